"""Image references as docker spells them: ``[registry/]repository[:tag][@sha256:digest]``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pipeline_kit.errors import InputError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    registry: str  # as written (docker.io for Docker Hub)
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        rest, digest = text, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            if not _DIGEST.match(digest):
                raise InputError(
                    f"'{text}': '{digest}' is not a sha256 digest.",
                    hint="Write repo@sha256:<64 hex digits>.",
                )
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, remainder
        else:
            registry, path = DOCKER_HUB, rest
        tag = None
        if ":" in path.rsplit("/", 1)[-1]:
            path, tag = path.rsplit(":", 1)
            if not _TAG.match(tag):
                raise InputError(
                    f"'{text}': '{tag}' is not a valid tag.",
                    hint="Tags are [A-Za-z0-9_.-], at most 128 characters, not starting "
                    "with . or -.",
                )
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not _REPOSITORY.match(path):
            raise InputError(
                f"'{text}': '{path}' is not a valid repository name.",
                hint="Use lowercase letters, digits and . _ - separators, e.g. team/llm-service.",
            )
        return cls(registry, path, tag, digest)

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What the manifest endpoint takes: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> ImageRef:
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> ImageRef:
        return replace(self, tag=None, digest=digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def sha256_digest(data: bytes) -> str:
    """The OCI digest of ``data``: ``sha256:<64 hex digits>``."""
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


# BuildKit lists its provenance and SBOM in an index as children of platform unknown/unknown.
_ATTESTATION = "vnd.docker.reference.type"


def platform_name(platform: Mapping[str, Any]) -> str:
    """``linux/arm64`` for an index entry's (or a config's) os, architecture and variant."""
    parts = (platform.get("os"), platform.get("architecture"), platform.get("variant"))
    return "/".join(str(part) for part in parts if part)


def is_attestation(entry: Mapping[str, Any]) -> bool:
    """An index entry that is not an image of a platform (BuildKit's attestation manifests)."""
    annotations = entry.get("annotations") or {}
    return _ATTESTATION in annotations or (entry.get("platform") or {}).get("os") == "unknown"


def platform_entries(index: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """An index's entries that are platforms' images, in its order."""
    return [entry for entry in index.get("manifests") or [] if not is_attestation(entry)]

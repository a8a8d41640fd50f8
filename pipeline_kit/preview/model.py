"""What a preview is: its name from the ref, who owns it, which digest it runs, when it expires.

Every provider records the same facts on what it creates (podman labels, namespace labels and
annotations), so ``status`` and ``gc`` read the state back from the platform itself: there is no
state file to lose, and a leak is found by its age.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline_kit.adapters.registry.references import ImageRef
from pipeline_kit.ci.context import CIContext

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "pipeline-kit"
PREVIEW = "pipeline-kit.dev/preview"  # the preview's name
SCOPE = "pipeline-kit.dev/scope"  # status and gc see only their own scope
OWNER = "pipeline-kit.dev/owner"
REF = "pipeline-kit.dev/ref"
EXPIRES = "pipeline-kit.dev/expires"
# Raw values that a Kubernetes label cannot hold (slashes, colons, 64-digit digests).
IMAGE = "pipeline-kit.dev/image"
REF_NAME = "pipeline-kit.dev/ref-name"
OWNER_NAME = "pipeline-kit.dev/owner-name"
CREATED = "pipeline-kit.dev/created"

MAX_LABEL = 63
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_COMPACT = "%Y%m%dT%H%M%SZ"  # ISO 8601 basic format: a valid label value
_RFC3339 = "%Y-%m-%dT%H:%M:%SZ"


def _shorten(text: str, cleaned: str, limit: int, strip: str) -> str:
    """``cleaned`` cut to ``limit``; a cut name keeps a hash of ``text`` so it stays unique."""
    if len(cleaned) <= limit:
        return cleaned
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return cleaned[: limit - 9].rstrip(strip) + "-" + digest


def label_value(text: str) -> str:
    """A Kubernetes label value: [A-Za-z0-9._-], alphanumeric at both ends, at most 63."""
    cleaned = _NOT_LABEL.sub("-", text).strip("-._")
    return _shorten(text, cleaned, MAX_LABEL, "-._")


def dns_name(text: str) -> str:
    """A DNS-1123 label (namespace and container names): [a-z0-9-], at most 63."""
    cleaned = _NOT_DNS.sub("-", text.lower()).strip("-")
    return _shorten(text, cleaned, MAX_LABEL, "-") or "preview"


def ref_slug(ci: CIContext) -> tuple[str, str]:
    """``(slug, ref)``: ``pr-57``/``mr-12`` for a pull or merge request (stable across its
    pushes, so a new push replaces the same preview), else the branch, the tag, or the sha."""
    if ci.pr_number is not None:
        kind = "mr" if ci.provider == "gitlab" else "pr"
        return f"{kind}-{ci.pr_number}", ci.branch or f"{kind}-{ci.pr_number}"
    if ci.branch:
        return ci.branch, ci.branch
    if ci.tag:
        return ci.tag, ci.tag
    if ci.sha:
        return f"sha-{ci.sha[:7]}", ci.sha
    return "local", "local"


def preview_name(prefix: str, ci: CIContext) -> str:
    slug, _ = ref_slug(ci)
    return dns_name(f"{prefix}-{slug}" if prefix else slug)


def compact_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_COMPACT)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_RFC3339)


def parse_time(text: str | None) -> datetime | None:
    """Either form this module writes; None for anything else (a hand-made or damaged label)."""
    if not text:
        return None
    for form in (_COMPACT, _RFC3339):
        try:
            return datetime.strptime(text, form).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class PreviewSpec:
    """One preview to bring up, everything resolved."""

    name: str
    scope: str
    image: str  # registry/repository@sha256:...
    ref: str
    owner: str
    created: datetime
    expires: datetime
    weights: Path | None = None
    port: int | None = None  # host port for the local provider (None: a free one)

    @property
    def digest(self) -> str:
        digest = ImageRef.parse(self.image).digest
        assert digest is not None, "a preview runs a digest"
        return digest

    def labels(self) -> dict[str, str]:
        """Selectable facts, as label-safe values."""
        return {
            MANAGED_BY: MANAGER,
            PREVIEW: self.name,
            SCOPE: self.scope,
            OWNER: label_value(self.owner) or "unknown",
            REF: label_value(self.ref) or "unknown",
            EXPIRES: compact_time(self.expires),
        }

    def annotations(self) -> dict[str, str]:
        """The raw values behind the labels."""
        return {
            IMAGE: self.image,
            REF_NAME: self.ref,
            OWNER_NAME: self.owner,
            CREATED: rfc3339(self.created),
        }


@dataclass(frozen=True)
class Preview:
    """A preview as the platform reports it."""

    name: str
    provider: str
    scope: str | None = None
    image: str | None = None
    ref: str | None = None
    owner: str | None = None
    created: datetime | None = None
    expires: datetime | None = None
    url: str | None = None
    state: str = "running"  # the platform's word: running, exited, created, active, ...

    @classmethod
    def from_spec(cls, spec: PreviewSpec, provider: str, url: str | None) -> Preview:
        return cls(
            name=spec.name,
            provider=provider,
            scope=spec.scope,
            image=spec.image,
            ref=spec.ref,
            owner=spec.owner,
            created=spec.created,
            expires=spec.expires,
            url=url,
        )

    @classmethod
    def from_metadata(
        cls,
        provider: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        url: str | None = None,
        state: str = "running",
    ) -> Preview:
        """Read back what ``PreviewSpec.labels``/``annotations`` wrote."""
        notes = {**labels, **(annotations or {})}
        return cls(
            name=name or labels.get(PREVIEW, "?"),
            provider=provider,
            scope=labels.get(SCOPE),
            image=notes.get(IMAGE),
            ref=notes.get(REF_NAME) or labels.get(REF),
            owner=notes.get(OWNER_NAME) or labels.get(OWNER),
            created=parse_time(notes.get(CREATED)),
            expires=parse_time(labels.get(EXPIRES)),
            url=url,
            state=state,
        )

    @property
    def digest(self) -> str | None:
        if not self.image or "@" not in self.image:
            return None
        return self.image.rsplit("@", 1)[1]

    def expired(self, now: datetime) -> bool:
        """Past its expiry; an unreadable expiry counts as expired, so nothing leaks forever."""
        return self.expires is None or self.expires <= now

    def record(self, now: datetime | None = None) -> dict[str, Any]:
        """A plain dict (JSON, $GITHUB_OUTPUT, dotenv consumers)."""
        record: dict[str, Any] = {
            "name": self.name,
            "provider": self.provider,
            "url": self.url,
            "image": self.image,
            "digest": self.digest,
            "ref": self.ref,
            "owner": self.owner,
            "scope": self.scope,
            "state": self.state,
            "created": rfc3339(self.created) if self.created else None,
            "expires": rfc3339(self.expires) if self.expires else None,
        }
        if now is not None:
            record["expired"] = self.expired(now)
        return record

"""A rebase plan: the image's layers above its base, on the base's new layers.

When nothing of the repository changed but the chain's base image (its tag now names a rebuild:
a CUDA or Debian security patch), the new image is the base's new layers under the image's own
layers above them (same digests, nothing built), with the config's rootfs and history made to
match and ``org.opencontainers.image.base.name``/``base.digest`` recorded.

Everything is decided from the image's manifest, config and provenance, the new base's
manifest and config, and the Dockerfile's chain; no layer is read.

The image's history is the base's entries, then one per instruction of the chain (then the
builder's label entries); the new base must have a history of the same shape (as many entries,
the same instruction kinds, the same empty ones), so the image's first entries and layers are
known to be the old base's. The environment, user and working directory the chain's
instructions ran with are replayed on the new base (``append.image_config.evaluate``, the
builder's rules) and must come out as the image has them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline_kit.adapters.registry.references import sha256_digest
from pipeline_kit.append import CannotAppend
from pipeline_kit.append.image_config import evaluate
from pipeline_kit.detect.keys import ChainKeys
from pipeline_kit.detect.provenance import Provenance, align, history_kind
from pipeline_kit.rebase import CannotRebase

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# A layer's media type in the other manifest family (the same bytes).
_DOCKER_OF = {
    "application/vnd.oci.image.layer.v1.tar+gzip": (
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    ),
}
_OCI_OF = {docker: oci for oci, docker in _DOCKER_OF.items()}
# What the chain's instructions ran with, which the new base must leave as it was.
_SEEN_FIELDS = ("User", "WorkingDir")


@dataclass(frozen=True)
class NewBase:
    """The chain's base image as its reference names it now."""

    reference: str  # as the Dockerfile's FROM names it (ARGs expanded)
    digest: str  # what the reference resolves to (an index's digest for a multi-platform one)
    manifest: Mapping[str, Any]  # the platform's image manifest
    config: Mapping[str, Any]


@dataclass(frozen=True)
class Image:
    """The image to rebase, as recorded in the registry."""

    reference: str  # repository@digest
    manifest: Mapping[str, Any]
    config: Mapping[str, Any]


@dataclass
class RebasePlan:
    image: Image
    base: NewBase
    old_base_layers: int
    base_layers: list[dict[str, Any]]  # the new base's layers, as the new manifest lists them
    config_blob: bytes
    manifest: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "previous": self.image.reference,
            "base": self.base.reference,
            "base_digest": self.base.digest,
            "replaced_layers": self.old_base_layers,
            "base_layers": len(self.base_layers),
            "kept_layers": len(self.manifest["layers"]) - len(self.base_layers),
        }


def plan_rebase(
    image: Image,
    base: NewBase,
    chain: ChainKeys,
    build_args: Mapping[str, str],
    labels: Mapping[str, str],
    created: str,
) -> RebasePlan | None:
    """The rebased image; None when the image already sits on the base's layers."""
    config = image.config
    layers = [dict(layer) for layer in image.manifest.get("layers") or []]
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    history = list(config.get("history") or [])
    base_layers = [dict(layer) for layer in base.manifest.get("layers") or []]
    base_diff_ids = list((base.config.get("rootfs") or {}).get("diff_ids") or [])
    base_history = list(base.config.get("history") or [])
    if len(diff_ids) != len(layers) or len(base_diff_ids) != len(base_layers):
        raise CannotRebase("a manifest and its config disagree on the number of layers")
    if _layer_count(base_history) != len(base_layers):
        raise CannotRebase(
            f"the base image {base.reference}: its history does not account for its layers"
        )
    provenance = Provenance.from_labels((config.get("config") or {}).get("Labels"))
    if isinstance(provenance, str):
        raise CannotRebase(f"the image {image.reference}: {provenance}")
    old_part = history[: len(base_history)]
    if _shape(old_part) != _shape(base_history):
        raise CannotRebase(
            f"the base image {base.reference}: its history ({len(base_history)} entries) does "
            "not have the shape of the base the image was built on: its instructions changed, "
            "not only its content"
        )
    old_layers = _layer_count(old_part)
    kinds = [step.kind for step in provenance.steps]
    alignment = align(history, len(layers), len(base_history), old_layers, kinds)
    if isinstance(alignment, str):
        raise CannotRebase(f"the image {image.reference}: {alignment}")
    if diff_ids[:old_layers] == base_diff_ids:
        return None
    for key in ("os", "architecture", "variant"):
        if config.get(key) != base.config.get(key):
            raise CannotRebase(
                f"the base image {base.reference} is {key} {base.config.get(key)!r}, the image "
                f"{config.get(key)!r}"
            )
    docker = image.manifest.get("mediaType") == DOCKER_MANIFEST
    _check_what_instructions_saw(image, base, chain, build_args, docker)
    new_config = _config(image, base, base_history, old_layers, labels, created)
    new_layers = [_in_family(layer, docker, base.reference) for layer in base_layers]
    manifest = _manifest(image, base, new_config, new_layers + layers[old_layers:], docker)
    return RebasePlan(image, base, old_layers, new_layers, new_config, manifest)


def _layer_count(history: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for entry in history if not entry.get("empty_layer"))


def _shape(history: Sequence[Mapping[str, Any]]) -> list[tuple[str, bool]]:
    """Each entry's instruction kind and whether it made a layer (not its text: a rebuilt
    base names new file digests in its ADD entries)."""
    return [
        (history_kind(str(entry.get("created_by", ""))), bool(entry.get("empty_layer")))
        for entry in history
    ]


def _check_what_instructions_saw(
    image: Image, base: NewBase, chain: ChainKeys, build_args: Mapping[str, str], docker: bool
) -> None:
    """The chain replayed on the new base must give the environment, user and working
    directory the image has: the RUN steps above the base ran with them."""
    try:
        evaluated = evaluate(
            base.config, chain.instructions, dict(chain.global_args), build_args, {},
            docker_format=docker,
        )  # fmt: skip
    except CannotAppend as exc:
        raise CannotRebase(exc.reason) from None
    mine = dict(image.config.get("config") or {})
    theirs = evaluated.config
    changes = [
        f"{name}={value or '(unset)'} (the image has {old or '(unset)'})"
        for name, old, value in _env_changes(mine.get("Env"), theirs.get("Env"))
    ]
    changes += [
        f"{field} {theirs.get(field) or '(unset)'!r} (the image has "
        f"{mine.get(field) or '(unset)'!r})"
        for field in _SEEN_FIELDS
        if (mine.get(field) or "") != (theirs.get(field) or "")
    ]
    if changes:
        raise CannotRebase(
            f"the base image {base.reference} changes what the Dockerfile's instructions ran "
            f"with: {'; '.join(changes[:4])}{' ...' if len(changes) > 4 else ''}"
        )


def _env_changes(
    old: Sequence[str] | None, new: Sequence[str] | None
) -> list[tuple[str, str, str]]:
    before = dict(str(item).partition("=")[::2] for item in old or [])
    after = dict(str(item).partition("=")[::2] for item in new or [])
    return [
        (name, before.get(name, ""), after.get(name, ""))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]


def _config(
    image: Image,
    base: NewBase,
    base_history: list[dict[str, Any]],
    old_layers: int,
    labels: Mapping[str, str],
    created: str,
) -> bytes:
    config = json.loads(json.dumps(image.config))  # a deep copy of plain JSON
    history = list(config.get("history") or [])
    diff_ids = list(config["rootfs"]["diff_ids"])
    base_diff_ids = list(base.config["rootfs"]["diff_ids"])
    config["created"] = created
    config["rootfs"] = {"type": "layers", "diff_ids": base_diff_ids + diff_ids[old_layers:]}
    config["history"] = base_history + history[len(base_history) :]
    inner = config.setdefault("config", {})
    inner["Labels"] = {
        **(inner.get("Labels") or {}),
        **labels,
        BASE_NAME: base.reference,
        BASE_DIGEST: base.digest,
    }
    return json.dumps(config, separators=(",", ":")).encode()


def _in_family(layer: Mapping[str, Any], docker: bool, reference: str) -> dict[str, Any]:
    """A base layer's descriptor as the image's manifest family writes it."""
    media_type = str(layer.get("mediaType", ""))
    wanted = (
        _DOCKER_OF.get(media_type, media_type) if docker else _OCI_OF.get(media_type, media_type)
    )
    family = "application/vnd.docker." if docker else "application/vnd.oci."
    if not wanted.startswith(family):
        raise CannotRebase(
            f"the base image {reference} has a {media_type} layer, which a "
            f"{'Docker' if docker else 'OCI'} manifest cannot list"
        )
    return {"mediaType": wanted, "digest": layer["digest"], "size": layer["size"]}


def _manifest(
    image: Image,
    base: NewBase,
    config_blob: bytes,
    layers: list[dict[str, Any]],
    docker: bool,
) -> dict[str, Any]:
    old = image.manifest
    manifest: dict[str, Any] = {"schemaVersion": 2}
    if "mediaType" in old:
        manifest["mediaType"] = old["mediaType"]
    manifest["config"] = {
        "mediaType": (old.get("config") or {}).get(
            "mediaType", "application/vnd.oci.image.config.v1+json"
        ),
        "digest": sha256_digest(config_blob),
        "size": len(config_blob),
    }
    manifest["layers"] = layers
    if not docker:
        annotations = dict(old.get("annotations") or {})
        annotations.update({BASE_NAME: base.reference, BASE_DIGEST: base.digest})
        manifest["annotations"] = annotations
    return manifest

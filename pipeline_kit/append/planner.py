"""An append plan against one previous image: what is kept, what is new, the config, the manifest.

Everything here is decided from the previous image's manifest, config and provenance, the
base image's config, the Dockerfile and the files on disk. The only other input is
``read_layer``, which fetches one of the previous image's replaced layers (never a kept one)
when a new layer needs to know the directories above what it writes (``parents``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pipeline_kit.adapters.registry.references import platform_name, sha256_digest
from pipeline_kit.append import CannotAppend
from pipeline_kit.append.copy_sources import place, read_ignore, resolve_sources
from pipeline_kit.append.image_config import evaluate, keep_untouched
from pipeline_kit.append.layer_tar import LayerBlob, make_layer
from pipeline_kit.append.parents import Listing, PathInfo, complete_layer, read_listing
from pipeline_kit.append.steps import CopyStep, MetadataStep, plan_steps
from pipeline_kit.detect.keys import ChainKeys
from pipeline_kit.detect.provenance import (
    KEY_CHARS,
    LayerAlignment,
    Provenance,
    RecordedStep,
    align,
)
from pipeline_kit.dockerfile.dockerignore import DockerIgnore

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MAX_READ_BYTES = 64 << 20  # replaced layers read for their directories; above this, build
NOP = "/bin/sh -c #(nop) "
KIT_LABEL_PREFIX = "dev.pipeline-kit."  # labels only the kit writes; stale ones are dropped
COMMENT = "pipeline-kit append"


class PreviousImage(NamedTuple):
    repository: str
    digest: str  # an index's, when ``index_body`` is set
    manifest: Mapping[str, Any]  # an index: its first platform's, as are config and provenance
    config: Mapping[str, Any]
    provenance: Provenance
    index_body: Mapping[str, Any] | None = None  # a multi-platform image: the index itself
    children: tuple[PreviousImage, ...] = ()  # and each platform's image, in its order

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def layers(self) -> list[Mapping[str, Any]]:
        return list(self.manifest.get("layers") or [])


class BaseImage(NamedTuple):
    """The chain's FROM image as its registry has it now (``config`` None: scratch)."""

    reference: str
    config: Mapping[str, Any] | None
    diff_ids: tuple[str, ...] = ()
    history: int = 0


class AppendInputs(NamedTuple):
    chain: ChainKeys
    provenance: Provenance  # what the new image records
    build_args: Mapping[str, str]
    labels: Mapping[str, str]  # the kit's labels, the provenance included
    context: Path
    dockerfile: Path
    mtime: int
    created: str


class PlannedStep(NamedTuple):
    line: int
    text: str
    action: str  # "config", "new layer", "reused layer"
    layer: LayerBlob | None = None


@dataclass
class AppendPlan:
    previous: PreviousImage
    first: int  # chain position of the first changed instruction
    kept_layers: int
    steps: list[PlannedStep]
    config: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    config_blob: bytes = b""
    new_layers: list[LayerBlob] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "previous": self.previous.reference,
            "first_changed": self.steps[0].line if self.steps else None,
            "kept_layers": self.kept_layers,
            "new_layers": len(self.new_layers),
            "new_layer_bytes": sum(layer.size for layer in self.new_layers),
            "reused_layers": sum(1 for s in self.steps if s.action == "reused layer"),
            "applied": [f"line {s.line}: {s.text} ({s.action})" for s in self.steps],
        }


@dataclass
class IndexAppendPlan:
    """An append onto a multi-platform index: one plan per platform's image, then a new index
    over their new manifests. Layers equal across platforms (a COPY of files) are one blob."""

    previous: PreviousImage  # the index
    children: list[AppendPlan]  # in the index's order

    @property
    def new_layers(self) -> list[LayerBlob]:
        unique = {layer.digest: layer for plan in self.children for layer in plan.new_layers}
        return list(unique.values())

    def summary(self) -> dict[str, Any]:
        first = self.children[0].summary()
        return {
            **first,
            "previous": self.previous.reference,
            "new_layers": len(self.new_layers),
            "new_layer_bytes": sum(layer.size for layer in self.new_layers),
            "platforms": {
                platform_name(plan.previous.config): plan.previous.digest for plan in self.children
            },
        }


def plan_append(
    inputs: AppendInputs,
    previous: PreviousImage,
    base: BaseImage,
    read_layers: Callable[[Sequence[Mapping[str, Any]]], list[bytes]],
    made: dict[tuple[Any, ...], LayerBlob] | None = None,
) -> AppendPlan:
    """The whole new image, or ``CannotAppend`` with the first reason the builder is needed.

    ``made``: layers already made for another platform's image of the same index, by what
    they hold; an equal layer is made once."""
    old = previous.provenance
    first = inputs.provenance.first_difference(old)
    if old.start != inputs.provenance.start:
        raise CannotAppend("the chain starts from another base image than the previous image")
    diff_ids = list((previous.config.get("rootfs") or {}).get("diff_ids") or [])
    history = list(previous.config.get("history") or [])
    if tuple(diff_ids[: len(base.diff_ids)]) != base.diff_ids:
        raise CannotAppend(
            f"the base image {base.reference} changed since the previous image was built"
        )
    alignment = align(
        history, len(previous.layers), base.history, len(base.diff_ids), [s.kind for s in old.steps]
    )
    if isinstance(alignment, str):
        raise CannotAppend(f"the previous image {previous.reference}: {alignment}")
    docker = previous.manifest.get("mediaType") == DOCKER_MANIFEST
    evaluated = evaluate(
        base.config,
        inputs.chain.instructions,
        dict(inputs.chain.global_args),
        inputs.build_args,
        inputs.labels,
        docker_format=docker,
    )
    keys = inputs.chain.instructions
    steps = plan_steps(keys[first:], evaluated.states[first:])
    kept = alignment.kept_layers(first)
    media_type = _layer_media_type(previous, docker)
    ignore = read_ignore(inputs.context, inputs.dockerfile)
    reader = _OldLayers(previous, alignment, read_layers, first)

    planned: list[PlannedStep] = []
    new_history: list[dict[str, Any]] = []
    layer_descriptors = [dict(layer) for layer in previous.layers[:kept]]
    new_diff_ids = diff_ids[:kept]
    own: dict[str, PathInfo] = {}  # what this build's layers after the kept ones write
    all_reused = True  # so far every replaced layer was taken over unchanged
    reused: list[int] = []  # chain positions whose old layer this image keeps
    author = {"author": evaluated.author} if evaluated.author else {}
    for step in steps:
        key = step.key
        text = " ".join(key.instruction.original.split())
        if isinstance(step, MetadataStep):
            planned.append(PlannedStep(key.instruction.line, text, "config"))
            new_history.append(
                {
                    "created": inputs.created,
                    "created_by": NOP + text,
                    **author,
                    "comment": COMMENT,
                    "empty_layer": True,
                }
            )
            continue
        position = key.position
        old_step = old.steps[position] if position < len(old.steps) else None
        old_layer = alignment.layer_of[position] if old_step is not None else None
        if (
            old_step is not None
            and old_layer is not None
            and old_step.own == key.own[:KEY_CHARS]
            and (all_reused or _unchanged_around(step, reader, own, first))
        ):
            # Same instruction, same content, same directories around it: the old layer is it.
            own.update(reader.listing(position) if not all_reused else {})
            layer = previous.layers[old_layer]
            layer_descriptors.append(dict(layer))
            new_diff_ids.append(diff_ids[old_layer])
            new_history.append(dict(history[alignment.history_of[position]]))
            planned.append(PlannedStep(key.instruction.line, text, "reused layer"))
            reused.append(position)
            continue
        if all_reused:  # from here on, what the reused layers wrote must be known
            for before in reused:
                own.update(reader.listing(before))
        all_reused = False
        blob = _new_layer(step, inputs, ignore, own, reader, first, old_step, media_type, made)
        layer_descriptors.append(
            {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size}
        )
        new_diff_ids.append(blob.diff_id)
        new_history.append(
            {"created": inputs.created, "created_by": NOP + text, **author, "comment": COMMENT}
        )
        planned.append(PlannedStep(key.instruction.line, text, "new layer", blob))

    for name, value in sorted(inputs.labels.items()):  # as buildah records each --label
        new_history.append(
            {
                "created": inputs.created,
                "created_by": f'{NOP}LABEL "{name}"="{value}"',
                **author,
                "comment": COMMENT,
                "empty_layer": True,
            }
        )
    config: dict[str, Any] = {"created": inputs.created, **author}
    config.update(
        {
            k: v
            for k, v in previous.config.items()
            if k not in ("created", "author", "config", "rootfs", "history")
        }
    )
    changed_kinds = {s.kind for s in old.steps[first:]} | {k.instruction.cmd for k in keys[first:]}
    if "HEALTHCHECK" in changed_kinds and not _built_by_buildah(history):
        raise CannotAppend(
            "HEALTHCHECK after the change: the replay knows buildah's OCI rule (dropped), not "
            "what the builder of the previous image writes"
        )
    config["config"] = keep_untouched(
        evaluated.config,
        previous.config.get("config") or {},
        changed_kinds,
        inputs.labels,
        KIT_LABEL_PREFIX,
    )
    config["rootfs"] = {"type": "layers", "diff_ids": new_diff_ids}
    config["history"] = history[: base.history + first] + new_history
    plan = AppendPlan(previous, first, kept, planned, config)
    plan.new_layers = [s.layer for s in planned if s.layer is not None]
    plan.config_blob = json.dumps(config, separators=(",", ":")).encode()
    plan.manifest = _manifest(previous, plan.config_blob, layer_descriptors)
    return plan


def _built_by_buildah(history: Sequence[Mapping[str, Any]]) -> bool:
    """buildah writes metadata steps as ``#(nop)`` entries (so does append, with its comment)."""
    return any(
        NOP in str(entry.get("created_by", "")) and entry.get("comment") != COMMENT
        for entry in history
    )


def _new_layer(
    step: CopyStep,
    inputs: AppendInputs,
    ignore: DockerIgnore,
    own: dict[str, PathInfo],
    reader: _OldLayers,
    first: int,
    old_step: RecordedStep | None,
    media_type: str,
    made: dict[tuple[Any, ...], LayerBlob] | None = None,
) -> LayerBlob:
    position = step.key.position
    items = resolve_sources(step, inputs.context, ignore)
    placement = place(step, items, ignore)
    earlier = [reader.listing(p) for p in reader.layer_positions(first, position)]
    same_effect = old_step is not None and old_step.effect == step.key.effect[:KEY_CHARS]
    same = reader.listing(position) if same_effect and reader.has_layer(position) else None
    entries = complete_layer(step, placement, own, earlier, same)
    key = (tuple(entries), inputs.mtime, media_type)
    if made is not None and key in made:
        return made[key]
    blob = make_layer(entries, inputs.mtime, media_type)
    if made is not None:
        made[key] = blob
    return blob


def _unchanged_around(
    step: CopyStep, reader: _OldLayers, own: Mapping[str, PathInfo], first: int
) -> bool:
    """Whether the old layer of the same instruction and content fits this build too.

    It does when every path it holds (its content and the directories above) and the working
    directory are, before this step, as they were before it in the previous build: written
    the same by this build's new layers, or by neither build's replaced layers.
    """
    position = step.key.position
    old = reader.listing(position)
    earlier = [reader.listing(p) for p in reader.layer_positions(first, position)]
    for path in [*old, step.workdir.strip("/")]:
        if not path:
            continue
        if path in own:
            if path in old and own[path] != old[path]:
                return False
        elif any(path in listing for listing in earlier):
            return False
    return True


class _OldLayers:
    """The previous image's replaced layers, read when first needed, all at once."""

    def __init__(
        self,
        previous: PreviousImage,
        alignment: LayerAlignment,
        read_layers: Callable[[Sequence[Mapping[str, Any]]], list[bytes]],
        first: int,
    ) -> None:
        self.previous = previous
        self.alignment = alignment
        self.read_layers = read_layers
        self.first = first
        self.listings: dict[int, Listing] | None = None

    def has_layer(self, position: int) -> bool:
        return (
            position < len(self.alignment.layer_of)
            and self.alignment.layer_of[position] is not None
        )

    def layer_positions(self, start: int, end: int) -> list[int]:
        return [
            p for p in range(start, min(end, len(self.alignment.layer_of))) if self.has_layer(p)
        ]

    def listing(self, position: int) -> Listing:
        if self.listings is None:
            # One round of requests for every replaced layer: they are small (code), and a
            # step needing one usually needs those around it too.
            positions = self.layer_positions(self.first, len(self.alignment.layer_of))
            descriptors = [self.previous.layers[self._index(p)] for p in positions]
            total = sum(int(d.get("size", 0)) for d in descriptors)
            if total > MAX_READ_BYTES:
                raise CannotAppend(
                    f"the previous image's layers after the change are {total >> 20} MiB; "
                    f"reading more than {MAX_READ_BYTES >> 20} MiB costs more than building"
                )
            blobs = self.read_layers(descriptors)
            self.listings = {
                p: read_listing(blob, f"layer {self._index(p)} of the previous image")
                for p, blob in zip(positions, blobs, strict=True)
            }
        return self.listings[position]

    def _index(self, position: int) -> int:
        index = self.alignment.layer_of[position]
        assert index is not None
        return index


def _layer_media_type(previous: PreviousImage, docker: bool) -> str:
    types = [str(layer.get("mediaType", "")) for layer in previous.layers]
    if types and not types[-1].endswith("gzip") and types[-1].endswith(".tar"):
        return types[-1]  # the previous image keeps its layers uncompressed: so do we
    return DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP


def _manifest(
    previous: PreviousImage, config_blob: bytes, layers: list[dict[str, Any]]
) -> dict[str, Any]:

    old_config = previous.manifest.get("config") or {}
    manifest: dict[str, Any] = {"schemaVersion": 2}
    if "mediaType" in previous.manifest:
        manifest["mediaType"] = previous.manifest["mediaType"]
    manifest["config"] = {
        "mediaType": old_config.get("mediaType", "application/vnd.oci.image.config.v1+json"),
        "digest": sha256_digest(config_blob),
        "size": len(config_blob),
    }
    manifest["layers"] = layers
    if previous.manifest.get("annotations"):
        manifest["annotations"] = dict(previous.manifest["annotations"])
    return manifest

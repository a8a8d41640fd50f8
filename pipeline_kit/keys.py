"""Content keys: a stage's key names exactly what goes into it, so equal content, equal key.

What goes in: the stage's instructions (normalised, so comments and line breaks do not count),
the image it starts from or the key of the stage it builds on, the values of the build args it
uses, the keys of stages it copies or mounts from, external images it copies from, and the
content of every context path it takes after .dockerignore (git ids, never re-hashed bytes).
"""

from __future__ import annotations

import hashlib

from pipeline_kit.context_tree import ContextSnapshot
from pipeline_kit.stages import Stage, StageGraph

KEY_VERSION = "pipeline-kit/stage-key/v1"


def stage_keys(graph: StageGraph, snapshot: ContextSnapshot) -> dict[int, str]:
    """The key of every stage (stages only refer to others without loops, checked at parse)."""
    keys: dict[int, str] = {}

    def key(index: int) -> str:
        if index not in keys:
            stage = graph.stages[index]
            for dep in stage.depends_on():
                key(dep)
            keys[index] = _stage_key(stage, keys, snapshot)
        return keys[index]

    for stage in graph.stages:
        key(stage.index)
    return keys


def _stage_key(stage: Stage, keys: dict[int, str], snapshot: ContextSnapshot) -> str:
    digest = hashlib.sha256()

    def add(*parts: str) -> None:
        digest.update(" ".join(parts).encode("utf-8", "surrogateescape") + b"\n")

    add(KEY_VERSION)
    if stage.parent is not None:
        add("from-stage", keys[stage.parent])
    else:
        add("from-image", stage.from_ref)
    for name, value in stage.from_args:
        add("from-arg", name, repr(value))
    for instruction in stage.instructions:
        add("instruction", instruction.normalized())
    for name, value in stage.args:
        add("arg", name, repr(value))
    for ref in stage.stage_refs:
        add("stage-ref", ref.via, keys[ref.stage])
    for image in stage.image_refs:
        add("image-ref", image)
    for url in stage.remote_sources:
        add("remote", url)
    for source in stage.sources:
        add("source", source.via, source.path)
        for line in snapshot.material(source):
            add("  ", line)
    return digest.hexdigest()

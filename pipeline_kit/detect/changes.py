"""Which layers changed between two revisions, why, and the content key of each.

The unit of change is the instruction of the target's chain (``chain``): the first one that
differs is the rebuild point, and each reason names the instruction that takes the change
(``Dockerfile:223 COPY server server: server/app.py``). A layer inferred as a range of that
chain changed when the rebuild point is in it or before it; a layer the config maps to a stage
changed when the stage's key differs. When the range is not trustworthy every layer counts as
changed, with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline_kit.adapters.git import Git
from pipeline_kit.config.loader import Config
from pipeline_kit.detect.chain import (
    ChainComparison,
    ChainDiff,
    Side,
    Step,
    chain_steps,
    describe,
    keys_of,
    match_stage,
)
from pipeline_kit.detect.keys import ChainKeys, from_chain, stage_keys
from pipeline_kit.detect.layers import Layer, LayerMap, layers_for
from pipeline_kit.detect.revisions import RevisionRange
from pipeline_kit.detect.sources import check_sources
from pipeline_kit.dockerfile.context_tree import ContextSnapshot, SourceLeavesContext
from pipeline_kit.dockerfile.dockerignore import DockerIgnore, ignore_file_candidates
from pipeline_kit.dockerfile.platform import Platform, platform_of, platforms_of
from pipeline_kit.dockerfile.stages import StageGraph, parse_dockerfile
from pipeline_kit.dockerfile.tree_cache import store_for
from pipeline_kit.errors import InputError


@dataclass(frozen=True)
class LayerChange:
    name: str
    stage: str
    changed: bool
    key: str
    reasons: tuple[str, ...]
    origin: str  # "config" or how the layer was inferred
    lines: tuple[int, int] = (0, 0)  # the first and last Dockerfile line of what it covers


@dataclass(frozen=True)
class RebuildPoint:
    """The first instruction of the target's chain that differs: a build starts there."""

    file: str
    line: int
    text: str  # the instruction on one line
    stage: str
    layer: str | None  # the layer it is in
    reasons: tuple[str, ...]
    trailing: bool  # in the layer that ends the chain (the only one append replays)
    certain: bool = True  # False when history was unknown and everything counts as changed

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "text": self.text,
            "stage": self.stage,
            "layer": self.layer,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Detection:
    range: RevisionRange
    dockerfile: str  # repository-relative
    context: str  # repository-relative, "." for the root
    target: str
    layers: tuple[LayerChange, ...]
    image_changed: bool
    image_key: str  # the target stage's key at head: names the whole image's content
    base_image_key: str | None = None  # the same at base, when base could be read
    chain: ChainKeys | None = None  # per-instruction keys of the target's FROM chain (build)
    chain_stages: tuple[tuple[str, str], ...] = ()  # (stage label, key) along that chain
    rebuild_point: RebuildPoint | None = None
    # The key of the chain up to where an inferred last layer starts inside a stage: every
    # image built on that prefix is one a change to the last layer can be appended to.
    append_base_key: str | None = None

    @property
    def rebuild_from(self) -> str | None:
        for layer in self.layers:
            if layer.changed:
                return layer.name
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.range.base,
            "head": self.range.head,
            "worktree": self.range.worktree,
            "base_from": self.range.base_from,
            "fail_safe": self.range.fail_safe,
            "dockerfile": self.dockerfile,
            "context": self.context,
            "target": self.target,
            "layers": {
                layer.name: {
                    "stage": layer.stage,
                    "changed": layer.changed,
                    "key": layer.key,
                    "reasons": list(layer.reasons),
                    "lines": list(layer.lines),
                    "origin": layer.origin,
                }
                for layer in self.layers
            },
            "rebuild_from": self.rebuild_from,
            "rebuild_point": self.rebuild_point.to_json() if self.rebuild_point else None,
            "image_changed": self.image_changed,
            "image_key": self.image_key,
        }


def repo_path(git: Git, path: Path, what: str) -> str:
    """``path`` relative to the repository root, in git's spelling ("" for the root)."""
    try:
        rel = path.resolve().relative_to(git.root.resolve()).as_posix()
    except ValueError:
        raise InputError(
            f"{what} {path} is outside the git repository at {git.root}.",
            hint="Keep the Dockerfile and context inside the repository.",
        ) from None
    return "" if rel == "." else rel


def detect_changes(
    git: Git, config: Config, rng: RevisionRange, *, with_chain: bool = False
) -> Detection:
    dockerfile = repo_path(git, config.dockerfile_path, "Dockerfile")
    context = repo_path(git, config.context_path, "context")
    platform = platform_of(config)
    # FROM takes the target platform's image, and RUN runs its binaries: the same Dockerfile
    # and context make another image on another platform, so another key. A multi-platform
    # image is keyed by all its platforms (its Dockerfile is read for the first).
    platforms = platforms_of(config)
    inputs = (*config.build_inputs(), f"platform {','.join(map(str, platforms))}")
    head_inputs = _other_platforms(
        git, rng.head_tree, dockerfile, context, config, inputs, platforms, None
    )
    if isinstance(head_inputs, str):
        raise InputError(f"{head_inputs}.", hint="Check `dockerfile` and `context`.")
    head = _read_side(
        git, rng.head_tree, dockerfile, context, config.build_args, head_inputs, None, platform,
        revision=f"{rng.head} and its working tree" if rng.worktree else rng.head,
    )  # fmt: skip
    if isinstance(head, str):
        raise InputError(
            f"{head} at {'the working tree' if rng.worktree else rng.head[:12]}.",
            hint="Check `dockerfile` and `context` in the config.",
        )
    layer_map, target = layers_for(head.graph, config)
    check_sources(
        head.graph,
        target,
        head.snapshot,
        dockerfile=dockerfile,
        context=context,
        revision="the working tree" if rng.worktree else rng.head[:12],
        treeish=rng.head_tree,
    )
    head_chain = keys_of(head, target, config.build_args, head_inputs)
    steps = chain_steps(head.graph, target, head_chain)

    base: Side | str | None = None
    reason = rng.fail_safe
    if reason is None and rng.base is not None:
        base_inputs = _other_platforms(
            git, rng.base, dockerfile, context, config, inputs, platforms, head
        )
        base = (
            base_inputs
            if isinstance(base_inputs, str)
            else _read_side(
                git, rng.base, dockerfile, context, config.build_args, base_inputs, head,
                platform, revision=rng.base,
            )
        )  # fmt: skip
        if isinstance(base, str):
            reason = f"{base} at base {rng.base[:12]}: nothing to compare with"
    if reason is not None or not isinstance(base, Side):
        why = reason or "base unknown"
        layers = _all_changed(head, layer_map, steps, why)
        diff = ChainDiff(tuple(steps), 0, ((0, why),))
        image_changed = True
    else:
        changed_paths = _context_paths(
            git.changed_paths(rng.base or "", rng.head_tree, context), context
        )
        comparison = ChainComparison(
            head,
            base,
            build_args=config.build_args,
            inputs=head_inputs,
            changed_paths=changed_paths,
            dockerfile=dockerfile,
        )
        diff = comparison.diff(target, _base_target(base.graph, head.graph, target))
        if layer_map.ranged:
            layers = _ranged(head, layer_map, diff)
        else:
            layers = _staged(head, base, layer_map, comparison)
        image_changed = (
            diff.first is not None or _base_target_key(base, target, head) != (head.keys[target])
        )
    return Detection(
        range=rng,
        dockerfile=dockerfile,
        context=context or ".",
        target=head.graph.stages[target].label,
        layers=layers,
        image_changed=image_changed,
        image_key=head.keys[target],
        base_image_key=_base_target_key(base, target, head) if isinstance(base, Side) else None,
        chain=head_chain if with_chain else None,
        chain_stages=tuple(
            (stage.label, head.keys[stage.index]) for stage in from_chain(head.graph, target)
        ),
        rebuild_point=_rebuild_point(
            head.graph, layer_map, diff, target, dockerfile, certain=isinstance(base, Side)
        ),
        append_base_key=_append_base_key(layer_map, steps),
    )


def _other_platforms(
    git: Git,
    treeish: str,
    dockerfile: str,
    context: str,
    config: Config,
    inputs: tuple[str, ...],
    platforms: Sequence[Platform],
    other_side: Side | None,
) -> tuple[str, ...] | str:
    """``inputs`` plus what the platforms after the first read differently from it.

    The Dockerfile is read for the first platform; a file only another platform COPYs
    (``COPY busybox-${TARGETARCH}``) must still change the image's keys. Each instruction
    whose own key differs on another platform adds that key, so a change to what every
    platform reads alike (the code) stays a change of that one instruction, and append can
    still publish it; a chain of another shape adds that platform's whole image key."""
    if len(platforms) < 2:
        return inputs
    first = _read_side(
        git, treeish, dockerfile, context, config.build_args, inputs, other_side, platforms[0]
    )
    if isinstance(first, str):
        return first
    _, first_target = layers_for(first.graph, config)
    mine = keys_of(first, first_target, config.build_args, inputs)
    extra: list[str] = []
    for platform in platforms[1:]:
        side = _read_side(
            git, treeish, dockerfile, context, config.build_args, inputs, other_side, platform
        )
        if isinstance(side, str):
            return side
        _, target = layers_for(side.graph, config)
        theirs = keys_of(side, target, config.build_args, inputs)
        if theirs.start != mine.start or len(theirs.instructions) != len(mine.instructions):
            extra.append(f"platform {platform} image {side.keys[target]}")
            continue
        extra += [
            f"platform {platform} step {key.position} {key.own}"
            for key, own in zip(theirs.instructions, mine.instructions, strict=True)
            if key.own != own.own
        ]
    return (*inputs, *extra)


def _append_base_key(layer_map: LayerMap, steps: Sequence[Step]) -> str | None:
    """The step key before the last layer, where that layer starts inside a stage (at a
    stage's FROM, the stage keys already name the images below it)."""
    last = layer_map.layers[-1] if layer_map.layers else None
    if last is None or last.steps is None or last.steps.start == 0:
        return None
    if steps[last.steps.start].instruction.cmd == "FROM":
        return None
    return steps[last.steps.start - 1].key


def _base_target(base: StageGraph, head: StageGraph, target: int) -> int:
    """The base's stage that is the head's target: by name, else the last one."""
    name = head.stages[target].name
    found = base.find(name) if name is not None else None
    return found.index if found is not None else len(base.stages) - 1


def _rebuild_point(
    graph: StageGraph,
    layer_map: LayerMap,
    diff: ChainDiff,
    target: int,
    dockerfile: str,
    *,
    certain: bool,
) -> RebuildPoint | None:
    if diff.first is None:
        return None
    step = diff.steps[diff.first]
    layer = _layer_of(layer_map, diff.first, step)
    if layer_map.ranged:
        last = layer_map.layers[-1] if layer_map.layers else None
        trailing = last is not None and last.steps is not None and diff.first in last.steps
    else:
        trailing = step.stage == target
    text = describe(dockerfile, step.instruction).split(" ", 1)[1]
    return RebuildPoint(
        file=dockerfile,
        line=step.instruction.line,
        text=text,
        stage=graph.stages[step.stage].label,
        layer=layer.name if layer is not None else None,
        reasons=tuple(reason for at, reason in diff.reasons if at == diff.first),
        trailing=trailing,
        certain=certain,
    )


def _layer_of(layer_map: LayerMap, position: int, step: Step) -> Layer | None:
    for layer in layer_map.layers:
        if layer.steps is not None and position in layer.steps:
            return layer
    return layer_map.for_stage(step.stage)


def _base_target_key(base: Side, target: int, head: Side) -> str | None:
    """The key the target stage had at base (matched by name, else by position)."""
    label = head.graph.stages[target].label
    for stage in base.graph.stages:
        if stage.label == label:
            return base.keys[stage.index]
    return base.keys.get(len(base.graph.stages) - 1)


def _read_side(
    git: Git,
    treeish: str,
    dockerfile: str,
    context: str,
    build_args: Mapping[str, str],
    inputs: tuple[str, ...],
    other: Side | None,
    platform: Platform | None = None,
    *,
    revision: str | None = None,
) -> Side | str:
    """The Dockerfile, .dockerignore and context at ``treeish``, or what is missing there.
    ``revision`` names the commit a context at the repository's root holds as ``.git``."""
    text = git.read_blob(treeish, dockerfile)
    if text is None:
        return f"no Dockerfile at {dockerfile}"
    context_tree = git.tree_of(treeish, context)
    if context_tree is None:
        return f"no context directory at {context or '.'}"
    try:
        graph = parse_dockerfile(
            text.decode("utf-8", "replace"),
            source=dockerfile,
            build_args=build_args,
            platform=platform,
        )
    except InputError as exc:
        if other is None:
            raise
        # The base side: a Dockerfile that does not parse there is nothing to compare with,
        # as a missing one; the commit that fixes it must be able to pass.
        return f"{str(exc.message).rstrip('.')} (it does not parse)"
    ignore_path, raw = "", None
    for candidate in ignore_file_candidates(PurePosixPath(dockerfile), PurePosixPath(context)):
        ignore_path = candidate.as_posix()
        raw = git.read_blob(treeish, ignore_path)
        if raw is not None:
            break
    ignore_text = "" if raw is None else raw.decode("utf-8", "replace")
    ignore = DockerIgnore.parse(ignore_text, source=ignore_path)
    # Filtered trees depend on the ignore rules: share them only when the rules are the same.
    shared = other is not None and other.ignore_text == ignore_text
    cache = other.snapshot.filtered_cache if other is not None and shared else {}
    snapshot = ContextSnapshot(
        git,
        context_tree,
        ignore,
        cache,
        store_for(ignore, os.environ),
        repository_at=revision if not context else None,
    )
    try:
        keys = stage_keys(graph, snapshot, inputs)
    except SourceLeavesContext as exc:
        if other is not None:  # the base side: nothing to compare with, so all changed
            return f"{dockerfile}:{exc.message.removeprefix('line ').rstrip('.')}"
        raise InputError(
            f"{dockerfile}:{exc.message.removeprefix('line ')}", hint=exc.hint
        ) from None
    return Side(graph, ignore, ignore_text, snapshot, keys)


def _context_paths(paths: list[str], context: str) -> list[str]:
    if not context:
        return paths
    prefix = context + "/"
    return [p[len(prefix) :] for p in paths if p.startswith(prefix)]


def _all_changed(
    head: Side, layer_map: LayerMap, steps: Sequence[Step], reason: str
) -> tuple[LayerChange, ...]:
    return tuple(
        LayerChange(
            name=layer.name,
            stage=head.graph.stages[layer.stage].label,
            changed=True,
            key=_layer_key(head, layer, steps),
            reasons=(reason,),
            origin=layer.origin,
            lines=_lines(head.graph, layer, steps),
        )
        for layer in layer_map.layers
    )


def _layer_key(head: Side, layer: Layer, steps: Sequence[Step]) -> str:
    """A stage's key for a configured layer; for a range, the key of the image up to its last
    instruction (the target stage's own key for the range that ends the chain, so that a
    range left last by instructions removed after it still changes key)."""
    if layer.steps is None:
        return head.keys[layer.stage]
    if layer.steps.stop == len(steps):
        return head.keys[steps[-1].stage]
    return steps[layer.steps.stop - 1].key


def _lines(graph: StageGraph, layer: Layer, steps: Sequence[Step]) -> tuple[int, int]:
    if layer.steps is None:
        instructions = graph.stages[layer.stage].instructions
        return instructions[0].line, instructions[-1].end_line
    return steps[layer.steps.start].instruction.line, steps[
        layer.steps.stop - 1
    ].instruction.end_line


def _ranged(head: Side, layer_map: LayerMap, diff: ChainDiff) -> tuple[LayerChange, ...]:
    """Inferred layers: a range changed when the rebuild point is in it or before it."""
    out = []
    before: str | None = None
    for layer in layer_map.layers:
        assert layer.steps is not None
        changed = diff.first is not None and diff.first < layer.steps.stop
        reasons = [reason for at, reason in diff.reasons if at in layer.steps] if changed else []
        if (
            changed
            and before is not None
            and diff.first is not None
            and diff.first < layer.steps.start
        ):
            reasons.append(f"after {before}")
        out.append(
            LayerChange(
                layer.name,
                head.graph.stages[layer.stage].label,
                changed,
                _layer_key(head, layer, diff.steps),
                tuple(reasons),
                layer.origin,
                _lines(head.graph, layer, diff.steps),
            )
        )
        before = layer.name
    return tuple(out)


def _staged(
    head: Side, base: Side, layer_map: LayerMap, comparison: ChainComparison
) -> tuple[LayerChange, ...]:
    """Layers the config maps to stages: a stage changed when its key differs."""

    def stage_changed(index: int) -> bool:
        other = match_stage(head.graph.stages[index], base.graph)
        return other is None or base.keys[other.index] != head.keys[index]

    def label(index: int) -> str:
        layer = layer_map.for_stage(index)
        return layer.name if layer is not None else f"stage '{head.graph.stages[index].label}'"

    layers = []
    for layer in layer_map.layers:
        stage = head.graph.stages[layer.stage]
        changed = stage_changed(layer.stage)
        reasons: list[str] = []
        if changed:
            other = match_stage(stage, base.graph)
            diff = comparison.diff(layer.stage, None if other is None else other.index)
            if other is None:
                reasons = [reason for _, reason in diff.reasons]
            else:
                reasons = [r for at, r in diff.reasons if diff.steps[at].stage == layer.stage]
            if stage.parent is not None and stage_changed(stage.parent):
                reasons.append(f"after {label(stage.parent)}")
            if not reasons:
                reasons = ["content key changed"]
        layers.append(
            LayerChange(
                layer.name,
                stage.label,
                changed,
                head.keys[layer.stage],
                tuple(reasons),
                layer.origin,
                _lines(head.graph, layer, ()),
            )
        )
    return tuple(layers)

"""Which layers changed between two revisions, why, and the content key of each.

A layer changed when its key differs between base and head; the reasons say what a person
would look for (a file, an instruction, a build arg, an upstream layer). When the range is
not trustworthy every layer counts as changed, with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline_kit.adapters.git import Git
from pipeline_kit.config.loader import Config
from pipeline_kit.detect.keys import ChainKeys, chain_keys, from_chain, stage_keys
from pipeline_kit.detect.layers import LayerMap, layers_for
from pipeline_kit.detect.revisions import RevisionRange
from pipeline_kit.detect.sources import check_sources
from pipeline_kit.dockerfile.context_tree import ContextSnapshot, SourceLeavesContext, source_takes
from pipeline_kit.dockerfile.dockerignore import DockerIgnore, ignore_file_candidates
from pipeline_kit.dockerfile.platform import Platform, platform_of
from pipeline_kit.dockerfile.stages import Stage, StageGraph, parse_dockerfile
from pipeline_kit.dockerfile.tree_cache import store_for
from pipeline_kit.errors import InputError

MAX_FILE_REASONS = 10


@dataclass(frozen=True)
class LayerChange:
    name: str
    stage: str
    changed: bool
    key: str
    reasons: tuple[str, ...]
    origin: str  # "config" or how the layer was inferred


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
                }
                for layer in self.layers
            },
            "rebuild_from": self.rebuild_from,
            "image_changed": self.image_changed,
            "image_key": self.image_key,
        }


@dataclass
class _Side:
    """Everything read at one revision."""

    graph: StageGraph
    ignore: DockerIgnore
    ignore_text: str
    snapshot: ContextSnapshot
    keys: dict[int, str]


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
    # and context make another image on another platform, so another key.
    inputs = (*config.build_inputs(), f"platform {platform}")
    head = _read_side(
        git, rng.head_tree, dockerfile, context, config.build_args, inputs, None, platform
    )
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

    base: _Side | str | None = None
    reason = rng.fail_safe
    if reason is None and rng.base is not None:
        base = _read_side(
            git, rng.base, dockerfile, context, config.build_args, inputs, head, platform
        )
        if isinstance(base, str):
            reason = f"{base} at base {rng.base[:12]}: nothing to compare with"
    if reason is not None or not isinstance(base, _Side):
        layers = _all_changed(head, layer_map, reason or "base unknown")
        image_changed = True
    else:
        changed_paths = _context_paths(
            git.changed_paths(rng.base or "", rng.head_tree, context), context
        )
        layers, image_changed = _compare(head, base, layer_map, target, changed_paths, dockerfile)
    chain = None
    if with_chain:
        chain = chain_keys(head.graph, target, head.snapshot, head.keys, config.build_args, inputs)
    return Detection(
        range=rng,
        dockerfile=dockerfile,
        context=context or ".",
        target=head.graph.stages[target].label,
        layers=layers,
        image_changed=image_changed,
        image_key=head.keys[target],
        base_image_key=_base_target_key(base, target, head) if isinstance(base, _Side) else None,
        chain=chain,
        chain_stages=tuple(
            (stage.label, head.keys[stage.index]) for stage in from_chain(head.graph, target)
        ),
    )


def _base_target_key(base: _Side, target: int, head: _Side) -> str | None:
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
    other: _Side | None,
    platform: Platform | None = None,
) -> _Side | str:
    """The Dockerfile, .dockerignore and context at ``treeish``, or what is missing there."""
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
    snapshot = ContextSnapshot(git, context_tree, ignore, cache, store_for(ignore, os.environ))
    try:
        keys = stage_keys(graph, snapshot, inputs)
    except SourceLeavesContext as exc:
        if other is not None:  # the base side: nothing to compare with, so all changed
            return f"{dockerfile}:{exc.message.removeprefix('line ').rstrip('.')}"
        raise InputError(
            f"{dockerfile}:{exc.message.removeprefix('line ')}", hint=exc.hint
        ) from None
    return _Side(graph, ignore, ignore_text, snapshot, keys)


def _context_paths(paths: list[str], context: str) -> list[str]:
    if not context:
        return paths
    prefix = context + "/"
    return [p[len(prefix) :] for p in paths if p.startswith(prefix)]


def _all_changed(head: _Side, layer_map: LayerMap, reason: str) -> tuple[LayerChange, ...]:
    return tuple(
        LayerChange(
            name=layer.name,
            stage=head.graph.stages[layer.stage].label,
            changed=True,
            key=head.keys[layer.stage],
            reasons=(reason,),
            origin=layer.origin,
        )
        for layer in layer_map.layers
    )


def _compare(
    head: _Side,
    base: _Side,
    layer_map: LayerMap,
    target: int,
    changed_paths: list[str],
    dockerfile: str,
) -> tuple[tuple[LayerChange, ...], bool]:
    matches = {s.index: _match(s, base.graph) for s in head.graph.stages}

    def stage_changed(index: int) -> bool:
        other = matches[index]
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
            reasons = _reasons(stage, matches[layer.stage], head, base, changed_paths, dockerfile)
            reasons += [f"after {label(dep)}" for dep in stage.depends_on() if stage_changed(dep)]
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
            )
        )
    return tuple(layers), stage_changed(target)


def _match(stage: Stage, graph: StageGraph) -> Stage | None:
    if stage.name is not None:
        return graph.find(stage.name)
    if stage.index < len(graph.stages) and graph.stages[stage.index].name is None:
        return graph.stages[stage.index]
    return None


def _reasons(
    stage: Stage,
    before: Stage | None,
    head: _Side,
    base: _Side,
    changed_paths: list[str],
    dockerfile: str,
) -> list[str]:
    """A stage's own reasons for changing (upstream changes are added by the caller)."""
    if before is None:
        return [f"new stage '{stage.label}' in {dockerfile}"]
    reasons = []
    if stage.parent is None and before.parent is None and stage.from_ref != before.from_ref:
        reasons.append(f"base image {before.from_ref} -> {stage.from_ref}")
    old_args = dict(before.from_args + before.args)
    for name, value in stage.from_args + stage.args:
        if name in old_args and old_args[name] != value:
            reasons.append(f"build arg {name}: {old_args[name]!r} -> {value!r}")
    reasons += _instruction_reasons(stage, before, dockerfile)

    sources = stage.sources + before.sources
    taken = [
        path
        for path in changed_paths
        if any(source_takes(source, path) for source in sources)
        and not (head.ignore.excluded(path) and base.ignore.excluded(path))
    ]
    reasons += taken[:MAX_FILE_REASONS]
    if len(taken) > MAX_FILE_REASONS:
        reasons.append(f"... and {len(taken) - MAX_FILE_REASONS} more files")
    if not reasons and sources and head.ignore_text != base.ignore_text:
        reasons.append(".dockerignore changed what the stage takes")
    return reasons


def _instruction_reasons(stage: Stage, before: Stage, dockerfile: str) -> list[str]:
    new = [i.normalized() for i in stage.instructions[1:]]
    old = [i.normalized() for i in before.instructions[1:]]
    if new == old:
        return []
    out = []
    import difflib  # only when instructions changed

    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if b2 > b1:
            for ins in stage.instructions[1 + b1 : 1 + b2]:
                out.append(
                    f"{dockerfile}:{ins.line} {ins.cmd} {'added' if op == 'insert' else 'changed'}"
                )
        else:
            for ins in before.instructions[1 + a1 : 1 + a2]:
                out.append(f"{dockerfile}: {ins.cmd} removed (was line {ins.line})")
    return out

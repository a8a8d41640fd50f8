"""Content keys: a stage's key names exactly what goes into it, so equal content, equal key.

What goes in: the stage's instructions (normalised, so comments and line breaks do not count),
the image it starts from or the key of the stage it builds on, the values of the build args it
uses, the keys of stages it copies or mounts from, external images it copies from, and the
content of every context path it takes after .dockerignore (git ids, never re-hashed bytes),
and what the config adds to every build's RUN steps (``Config.build_inputs``: host mounts, the
isolation), so a build made with other mounts never shares a key with one made without.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from pipeline_kit.dockerfile.context_tree import ContextSnapshot
from pipeline_kit.dockerfile.expand import expand, uses_variables
from pipeline_kit.dockerfile.stages import Instruction, Stage, StageGraph

KEY_VERSION = "pipeline-kit/stage-key/v1"


def stage_keys(
    graph: StageGraph, snapshot: ContextSnapshot, inputs: Sequence[str] = ()
) -> dict[int, str]:
    """The key of every stage (stages only refer to others without loops, checked at parse).

    ``inputs``: what the config adds to the build (empty: nothing, and keys as ever).
    """
    keys: dict[int, str] = {}

    def key(index: int) -> str:
        if index not in keys:
            stage = graph.stages[index]
            for dep in stage.depends_on():
                key(dep)
            keys[index] = _stage_key(stage, keys, snapshot, inputs)
        return keys[index]

    for stage in graph.stages:
        key(stage.index)
    return keys


def _stage_key(
    stage: Stage, keys: dict[int, str], snapshot: ContextSnapshot, inputs: Sequence[str]
) -> str:
    digest = hashlib.sha256()

    def add(*parts: str) -> None:
        digest.update(" ".join(parts).encode("utf-8", "surrogateescape") + b"\n")

    add(KEY_VERSION)
    for build_input in inputs:
        add("build-input", build_input)
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


INSTRUCTION_KEY_VERSION = "pipeline-kit/instruction-key/v1"


class InstructionKey(NamedTuple):
    """One instruction of the target's FROM chain, keyed three ways.

    ``own`` names what the instruction does given the same image before it: its text, the
    values of the variables it refers to, the working directory and user it runs with, and
    the content of the context paths it takes. ``effect`` is ``own`` without that content
    (where and as whom it writes). ``cumulative`` chains ``own`` from the chain's start, so
    two images agree up to the first instruction whose cumulative keys differ.
    """

    position: int  # 0-based, over the instructions of every stage of the chain (FROMs left out)
    stage: int
    instruction: Instruction
    own: str
    effect: str
    cumulative: str
    # What ``effect`` takes besides the text, by name ($VAR, WORKDIR, USER), for reasons.
    seen: tuple[tuple[str, str], ...] = ()


class ChainKeys(NamedTuple):
    start: str  # the chain's base image reference (and the ARGs its FROM line uses)
    instructions: tuple[InstructionKey, ...]
    from_ref: str  # the image the chain's first stage starts FROM ("scratch" included)
    global_args: tuple[tuple[str, str | None], ...]  # ARGs before the first FROM, resolved


def from_chain(graph: StageGraph, target: int) -> list[Stage]:
    """The stages ``target`` is built FROM, first stage first, the target last."""
    chain = [graph.stages[target]]
    while chain[-1].parent is not None:
        parent = chain[-1].parent
        assert parent is not None
        chain.append(graph.stages[parent])
    chain.reverse()
    return chain


def chain_keys(
    graph: StageGraph,
    target: int,
    snapshot: ContextSnapshot,
    keys: Mapping[int, str],
    build_args: Mapping[str, str],
    inputs: Sequence[str] = (),
) -> ChainKeys:
    """Per-instruction keys of the target's FROM chain (``keys``: every stage's key)."""
    chain = from_chain(graph, target)
    first = chain[0]
    start = _digest(INSTRUCTION_KEY_VERSION, "from", first.from_ref, repr(first.from_args))
    if inputs:  # other mounts make other RUN results: nothing of the chain is shared
        start = _digest(start, *(f"build-input {value}" for value in inputs))
    out: list[InstructionKey] = []
    cumulative = start
    globals_ = dict(graph.global_args)
    env: dict[str, str] = {}
    workdir, user = "", ""
    for stage in chain:
        args: dict[str, str | None] = {}
        for ins in stage.instructions[1:]:
            scope: dict[str, str | None] = {**args, **env}
            used = set()
            for text in (*ins.args, *ins.flags):
                used |= uses_variables(text)
            parts = [ins.cmd, ins.normalized()]
            parts += [f"var {name}={scope.get(name)!r}" for name in sorted(used)]
            seen = {f"${name}": repr(scope.get(name)) for name in used}
            if ins.cmd in ("RUN", "COPY", "ADD"):
                # RUN sees every variable; COPY and ADD create the working directory.
                parts += [f"workdir {workdir}", f"user {user}"]
                seen.update(WORKDIR=workdir or "/", USER=user or "root")
            if ins.cmd == "RUN":
                parts += [f"scope {name}={value!r}" for name, value in sorted(scope.items())]
                seen.update((f"${name}", repr(value)) for name, value in scope.items())
            parts += [
                f"stage-ref {ref.via} {keys[ref.stage]}"
                for ref in stage.stage_refs
                if ref.line == ins.line
            ]
            effect = _digest(INSTRUCTION_KEY_VERSION, *parts)
            material = [
                f"source {source.via} {source.path} " + " ".join(snapshot.material(source))
                for source in stage.sources
                if source.line == ins.line
            ]
            own = _digest(effect, *material) if material else effect
            cumulative = _digest(cumulative, own)
            out.append(
                InstructionKey(
                    len(out), stage.index, ins, own, effect, cumulative, tuple(sorted(seen.items()))
                )
            )
            # The scope the next instruction sees (the same rules as stages.py).
            if ins.cmd == "ARG":
                for name, default in _arg_assignments(ins.args):
                    if name in build_args:
                        args[name] = build_args[name]
                    elif default is not None:
                        args[name] = expand(default, scope)
                    else:
                        args[name] = globals_.get(name)
            elif ins.cmd == "ENV":
                pairs = list(ins.args)
                for i in range(0, len(pairs) - 1, 2):
                    env[pairs[i]] = expand(pairs[i + 1], scope)
            elif ins.cmd == "WORKDIR" and ins.args:
                workdir = posixpath.join(workdir or "/", expand(ins.args[0], scope))
            elif ins.cmd == "USER" and ins.args:
                user = expand(ins.args[0], scope)
    return ChainKeys(start, tuple(out), first.from_ref, graph.global_args)


def _arg_assignments(args: tuple[str, ...]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for arg in args:
        name, eq, value = arg.partition("=")
        out.append((name, value if eq else None))
    return out


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()

"""The target's chain, instruction by instruction: where two revisions part, and why.

The chain is every instruction of the stages the target is built FROM, FROM lines included;
a stage that ``COPY --from`` or ``RUN --mount from=`` takes from comes in through the key of
the instruction that takes it. Each step has a cumulative key, so two revisions agree up to
the first step whose keys differ: the rebuild point. Every changed step gets reasons that
name it (``Dockerfile:223 COPY server server: server/app.py``), a changed stage it takes
from included (``...: stage 'builder' changed: Dockerfile:12 COPY router router: ...``).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from pipeline_kit.detect.keys import ChainKeys, InstructionKey, chain_keys, from_chain
from pipeline_kit.dockerfile.context_tree import ContextSnapshot, source_takes
from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.stages import Instruction, Stage, StageGraph

MAX_FILE_REASONS = 10
TEXT_CHARS = 60
STEP_KEY_VERSION = "pipeline-kit/step-key/v1"


@dataclass
class Side:
    """Everything read at one revision."""

    graph: StageGraph
    ignore: DockerIgnore
    ignore_text: str
    snapshot: ContextSnapshot
    keys: dict[int, str]  # every stage's key
    chains: dict[int, ChainKeys] = field(default_factory=dict)  # by target stage, when made


class Step(NamedTuple):
    """One instruction of the chain; ``key`` names the image up to and with it."""

    stage: int
    instruction: Instruction
    key: str


class ChainDiff(NamedTuple):
    steps: tuple[Step, ...]  # the head's chain
    first: int | None  # the rebuild point: the first step whose key differs, or None
    reasons: tuple[tuple[int, str], ...]  # (step, reason), in chain order


def describe(dockerfile: str, ins: Instruction) -> str:
    """``Dockerfile:12 COPY server server``: where an instruction is and what it says."""
    text = " ".join(ins.original.split())
    if len(text) > TEXT_CHARS:
        text = text[: TEXT_CHARS - 1] + "…"
    return f"{dockerfile}:{ins.line} {text}"


def keys_of(
    side: Side, target: int, build_args: Mapping[str, str], inputs: Sequence[str]
) -> ChainKeys:
    if target not in side.chains:
        side.chains[target] = chain_keys(
            side.graph, target, side.snapshot, side.keys, build_args, inputs
        )
    return side.chains[target]


def chain_steps(graph: StageGraph, target: int, chain: ChainKeys) -> list[Step]:
    """The steps of ``target``'s chain, FROM lines included, with their cumulative keys.

    An instruction's key is its own (``keys.InstructionKey.own``) chained on the one before;
    an ARG's also takes the values it declares (build args included), so the steps name
    everything the stages' keys name, an ARG that nothing uses included.
    """
    own: dict[int, list[InstructionKey]] = {}
    for key in chain.instructions:
        own.setdefault(key.stage, []).append(key)
    steps: list[Step] = []
    cumulative = _digest(STEP_KEY_VERSION, chain.start)
    for stage in from_chain(graph, target):
        steps.append(Step(stage.index, stage.instructions[0], cumulative))
        values = dict(stage.args)
        for key in own.get(stage.index, []):
            cumulative = _digest(cumulative, key.own)
            if key.instruction.cmd == "ARG":
                declared = [arg.partition("=")[0] for arg in key.instruction.args]
                cumulative = _digest(cumulative, *(f"{n}={values.get(n)!r}" for n in declared))
            steps.append(Step(stage.index, key.instruction, cumulative))
    return steps


def match_stage(stage: Stage, graph: StageGraph) -> Stage | None:
    """The stage of ``graph`` that is ``stage`` at the other revision: by name, else by place."""
    if stage.name is not None:
        return graph.find(stage.name)
    if stage.index < len(graph.stages) and graph.stages[stage.index].name is None:
        return graph.stages[stage.index]
    return None


class ChainComparison:
    """Compares chains of the head's stages with the base's, each at most once."""

    def __init__(
        self,
        head: Side,
        base: Side,
        *,
        build_args: Mapping[str, str],
        inputs: Sequence[str],
        changed_paths: Sequence[str],
        dockerfile: str,
    ) -> None:
        self.head, self.base = head, base
        self.build_args, self.inputs = build_args, inputs
        self.changed_paths = changed_paths
        self.dockerfile = dockerfile
        self._diffs: dict[int, ChainDiff] = {}

    def diff(self, target: int, base_target: int | None) -> ChainDiff:
        """How the head's chain of ``target`` differs from the base's of ``base_target``."""
        if target not in self._diffs:
            self._diffs[target] = self._diff(target, base_target)
        return self._diffs[target]

    def _diff(self, target: int, base_target: int | None) -> ChainDiff:
        head_keys = keys_of(self.head, target, self.build_args, self.inputs)
        steps = chain_steps(self.head.graph, target, head_keys)
        if base_target is None:
            label = self.head.graph.stages[target].label
            return ChainDiff(tuple(steps), 0, ((0, f"new stage '{label}' in {self.dockerfile}"),))
        base_keys = keys_of(self.base, base_target, self.build_args, self.inputs)
        old_steps = chain_steps(self.base.graph, base_target, base_keys)
        first = next(
            (
                i
                for i, (new, old) in enumerate(zip(steps, old_steps, strict=False))
                if new.key != old.key
            ),
            None,
        )
        if first is None and len(steps) == len(old_steps):
            return ChainDiff(tuple(steps), None, ())
        if first is None:
            first = min(len(old_steps), len(steps) - 1)
        step_of = _step_index(steps)
        reasons: list[tuple[int, str]] = []
        if head_keys.start != base_keys.start:
            reasons += [(0, r) for r in self._start_reasons(target, base_target)]
        reasons += self._instruction_reasons(head_keys, base_keys, step_of, len(steps))
        reasons += self._arg_reasons(steps, target)
        if not any(step >= first for step, _ in reasons):
            reasons.append(
                (first, f"{describe(self.dockerfile, steps[first].instruction)}: content changed")
            )
        return ChainDiff(tuple(steps), first, tuple(sorted(reasons, key=lambda r: r[0])))

    def _start_reasons(self, target: int, base_target: int) -> list[str]:
        new = from_chain(self.head.graph, target)[0]
        old = from_chain(self.base.graph, base_target)[0]
        where = describe(self.dockerfile, new.instructions[0])
        out = []
        if new.from_ref != old.from_ref:
            out.append(f"{where}: base image {old.from_ref} -> {new.from_ref}")
        old_args = dict(old.from_args)
        for name, value in new.from_args:
            if name in old_args and old_args[name] != value:
                out.append(f"{where}: build arg {name}: {old_args[name]!r} -> {value!r}")
        return out

    def _instruction_reasons(
        self, head: ChainKeys, base: ChainKeys, step_of: Mapping[int, int], end: int
    ) -> list[tuple[int, str]]:
        new = [key.instruction.normalized() for key in head.instructions]
        old = [key.instruction.normalized() for key in base.instructions]
        out: list[tuple[int, str]] = []
        matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
        for op, a1, a2, b1, b2 in matcher.get_opcodes():
            if op == "equal":
                for before, after in zip(
                    base.instructions[a1:a2], head.instructions[b1:b2], strict=True
                ):
                    if before.own != after.own:
                        step = step_of[after.position]
                        out += [(step, r) for r in self._content_reasons(after, before)]
                continue
            for key in head.instructions[b1:b2]:
                what = "added" if op == "insert" else "changed"
                out.append(
                    (step_of[key.position], f"{describe(self.dockerfile, key.instruction)}: {what}")
                )
            if b2 == b1:
                step = step_of[head.instructions[b1].position] if b1 < len(new) else end - 1
                for key in base.instructions[a1:a2]:
                    text = describe(self.dockerfile, key.instruction).split(" ", 1)[1]
                    out.append(
                        (
                            step,
                            f"{self.dockerfile}: {text}: removed (was line {key.instruction.line})",
                        )
                    )
        return out

    def _content_reasons(self, new: InstructionKey, old: InstructionKey) -> list[str]:
        """Why an instruction with the same text makes something else."""
        ins = new.instruction
        where = describe(self.dockerfile, ins)
        out = []
        seen_new, seen_old = dict(new.seen), dict(old.seen)
        for name in sorted(set(seen_new) | set(seen_old)):
            if seen_new.get(name) != seen_old.get(name):
                out.append(f"{where}: {name} {seen_old.get(name)} -> {seen_new.get(name)}")
        head_stage = self.head.graph.stages[new.stage]
        base_stage = self.base.graph.stages[old.stage]
        for ref in head_stage.stage_refs:
            if ref.line != ins.line:
                continue
            other = match_stage(self.head.graph.stages[ref.stage], self.base.graph)
            if other is not None and self.base.keys[other.index] == self.head.keys[ref.stage]:
                continue
            nested = self.diff(ref.stage, None if other is None else other.index)
            label = self.head.graph.stages[ref.stage].label
            why = f": {nested.reasons[0][1]}" if nested.reasons else ""
            more = len(nested.reasons) - 1
            tail = f" (and {more} more)" if more > 0 else ""
            out.append(f"{where}: stage '{label}' changed{why}{tail}")
        sources = [s for s in head_stage.sources if s.line == ins.line]
        sources += [s for s in base_stage.sources if s.line == old.instruction.line]
        if sources:
            taken = [
                path
                for path in self.changed_paths
                if any(source_takes(source, path) for source in sources)
                and not (self.head.ignore.excluded(path) and self.base.ignore.excluded(path))
            ]
            out += [f"{where}: {path}" for path in taken[:MAX_FILE_REASONS]]
            if len(taken) > MAX_FILE_REASONS:
                out.append(f"{where}: ... and {len(taken) - MAX_FILE_REASONS} more files")
            if not taken and self.head.ignore_text != self.base.ignore_text:
                out.append(f"{where}: .dockerignore changed what it takes")
        return out or [f"{where}: content changed"]

    def _arg_reasons(self, steps: Sequence[Step], target: int) -> list[tuple[int, str]]:
        """Build args a chain stage declares whose values differ, at the ARG that declares them."""
        out: list[tuple[int, str]] = []
        for stage in from_chain(self.head.graph, target):
            old = match_stage(stage, self.base.graph)
            if old is None:
                continue
            old_args = dict(old.args)
            for name, value in stage.args:
                if name not in old_args or old_args[name] == value:
                    continue
                step = next(
                    (
                        i
                        for i, s in enumerate(steps)
                        if s.stage == stage.index
                        and s.instruction.cmd == "ARG"
                        and any(arg.partition("=")[0] == name for arg in s.instruction.args)
                    ),
                    max(i for i, s in enumerate(steps) if s.stage == stage.index),
                )
                where = describe(self.dockerfile, steps[step].instruction)
                out.append((step, f"{where}: build arg {name}: {old_args[name]!r} -> {value!r}"))
        return out


def _step_index(steps: Sequence[Step]) -> dict[int, int]:
    """Chain position (FROM lines left out, as ``keys.InstructionKey.position``) -> step."""
    out: dict[int, int] = {}
    for index, step in enumerate(steps):
        if step.instruction.cmd != "FROM":
            out[len(out)] = index
    return out


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()

"""What the kit records in every image it publishes, and how a previous image is read back.

The label ``dev.pipeline-kit.provenance`` holds the chain's start key, the key of every stage
of the target's FROM chain and, per instruction of that chain, its kind and its own and
effect keys (``keys.InstructionKey``). Which layer each instruction made is not recorded: it
follows from the image's own history (one entry per instruction, ``empty_layer`` for those
that made none), which ``align`` checks against the recorded kinds before anything is kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pipeline_kit.detect.keys import ChainKeys
from pipeline_kit.dockerfile.stages import KNOWN_INSTRUCTIONS

PROVENANCE_LABEL = "dev.pipeline-kit.provenance"
VERSION = 1
KEY_CHARS = 32  # 128 bits per key keep the label small; collisions are not a practical concern
_NOP = "#(nop)"
_SHELL_PREFIX = "/bin/sh -c "


class RecordedStep(NamedTuple):
    kind: str  # the instruction (COPY, ENV, RUN, ...)
    own: str
    effect: str


class Provenance(NamedTuple):
    start: str
    stages: tuple[tuple[str, str], ...]  # (label, key) along the FROM chain
    steps: tuple[RecordedStep, ...]

    @classmethod
    def of(cls, chain: ChainKeys, stages: Sequence[tuple[str, str]]) -> Provenance:
        return cls(
            start=chain.start[:KEY_CHARS],
            stages=tuple(stages),
            steps=tuple(
                RecordedStep(k.instruction.cmd, k.own[:KEY_CHARS], k.effect[:KEY_CHARS])
                for k in chain.instructions
            ),
        )

    def to_label(self) -> str:
        body = {
            "v": VERSION,
            "start": self.start,
            "stages": [list(stage) for stage in self.stages],
            "chain": [[s.kind, s.own, s.effect] for s in self.steps],
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> Provenance | str:
        """The recorded provenance, or why there is none to trust."""
        raw = (labels or {}).get(PROVENANCE_LABEL)
        if raw is None:
            return f"it has no {PROVENANCE_LABEL} label: pipeline-kit did not record it"
        try:
            body = json.loads(raw)
            if body.get("v") != VERSION:
                return f"its {PROVENANCE_LABEL} label is version {body.get('v')}, not {VERSION}"
            steps = tuple(RecordedStep(str(k), str(o), str(e)) for k, o, e in body["chain"])
            stages = tuple((str(label), str(key)) for label, key in body["stages"])
            return cls(str(body["start"]), stages, steps)
        except (ValueError, TypeError, KeyError, AttributeError):
            return f"its {PROVENANCE_LABEL} label cannot be read"

    def first_difference(self, other: Provenance) -> int:
        """The first chain position where the two differ (the shorter length if none)."""
        if self.start != other.start:
            return 0
        for position, (mine, theirs) in enumerate(zip(self.steps, other.steps, strict=False)):
            if mine.own != theirs.own:
                return position
        return min(len(self.steps), len(other.steps))


def history_kind(created_by: str) -> str:
    """The instruction a history entry names, as buildah, Kaniko and this kit write them.

    buildah: ``/bin/sh -c #(nop) COPY ...`` for everything but RUN, ``/bin/sh -c CMD`` for
    RUN. Kaniko: the instruction as written (``COPY app/ /app/``, ``RUN ...``).
    """
    text = created_by.strip()
    if text.startswith(_SHELL_PREFIX):
        rest = text[len(_SHELL_PREFIX) :].lstrip()
        if not rest.startswith(_NOP):
            return "RUN"
        text = rest[len(_NOP) :].strip()
    word = text.split(" ", 1)[0].upper()
    return word if word in KNOWN_INSTRUCTIONS else "RUN"


class LayerAlignment(NamedTuple):
    """Which history entry and which layer each recorded instruction of an image made."""

    base_history: int  # entries the base image brought
    base_layers: int
    history_of: tuple[int, ...]  # per chain position: index into the config's history
    layer_of: tuple[int | None, ...]  # per chain position: index into the layers, or None

    def kept_layers(self, position: int) -> int:
        """How many layers come before chain position ``position``."""
        count = self.base_layers
        for layer in self.layer_of[:position]:
            if layer is not None:
                count = layer + 1
        return count


def align(
    history: Sequence[Mapping[str, Any]],
    layer_count: int,
    base_history: int,
    base_layers: int,
    kinds: Sequence[str],
) -> LayerAlignment | str:
    """Match the recorded instruction kinds with the image's history, or say where they part.

    After the base image's entries comes one entry per instruction of the chain, then only
    empty LABEL entries (buildah writes one per ``--label``); the layers are the base's plus
    one per non-empty entry.
    """
    if len(history) < base_history + len(kinds):
        return (
            f"its history has {len(history)} entries, fewer than the {base_history} of the base "
            f"image plus the {len(kinds)} recorded instructions"
        )
    layer = base_layers
    layer_of: list[int | None] = []
    for position, kind in enumerate(kinds):
        entry = history[base_history + position]
        seen = history_kind(str(entry.get("created_by", "")))
        if seen != kind:
            return (
                f"history entry {base_history + position} is {seen}, but the recorded "
                f"instruction {position + 1} of the chain is {kind}"
            )
        if entry.get("empty_layer"):
            layer_of.append(None)
        else:
            layer_of.append(layer)
            layer += 1
    for index in range(base_history + len(kinds), len(history)):
        entry = history[index]
        if not entry.get("empty_layer") or history_kind(str(entry.get("created_by", ""))) != (
            "LABEL"
        ):
            return f"history entry {index} after the recorded instructions is not a builder label"
    if layer != layer_count:
        return f"its history accounts for {layer} layers, but it has {layer_count}"
    return LayerAlignment(
        base_history,
        base_layers,
        tuple(range(base_history, base_history + len(kinds))),
        tuple(layer_of),
    )

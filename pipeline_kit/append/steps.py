"""Which instructions can be appended: COPY/ADD from the context and metadata, nothing else.

``plan_steps`` takes the chain from the first changed instruction to its end and returns one
step per instruction, or raises ``CannotAppend`` naming the first instruction that needs the
builder and why. It is pure: the files are looked at later (``copy_sources``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from pipeline_kit.append import CannotAppend
from pipeline_kit.append.image_config import StepState
from pipeline_kit.append.words import process_word
from pipeline_kit.detect.keys import InstructionKey
from pipeline_kit.dockerfile.expand import expand

# The metadata instructions append replays (the others change more than the config).
METADATA = frozenset(
    "ENV LABEL WORKDIR USER CMD ENTRYPOINT EXPOSE ARG STOPSIGNAL HEALTHCHECK".split()
)
# --link changes how BuildKit builds the layer (alone, then rebased), not what the merged
# filesystem holds; the directories above it come from the previous image's layer of the same
# instruction, which shows them as that builder made them (see parents.py).
_COPY_FLAGS = ("chown", "chmod", "link")
_REMOTE = re.compile(r"^(?:https?://|git@|git://|ssh://)")
_NUMERIC_OWNER = re.compile(r"^(\d+)(?::(\d+))?$")


class MetadataStep(NamedTuple):
    key: InstructionKey


class CopyStep(NamedTuple):
    key: InstructionKey
    sources: tuple[str, ...]  # as written after expansion, relative to the context
    dest: str  # after expansion; relative ones are relative to ``workdir``
    workdir: str  # absolute, cleaned
    owner: tuple[int, int] | None  # --chown, numeric; None: root
    chmod: int | None

    @property
    def line(self) -> int:
        return self.key.instruction.line


Step = MetadataStep | CopyStep


def plan_steps(keys: Sequence[InstructionKey], states: Sequence[StepState]) -> list[Step]:
    """One step per instruction of ``keys`` (``states[i]``: what ``keys[i]`` sees)."""
    steps: list[Step] = []
    for key, state in zip(keys, states, strict=True):
        ins = key.instruction
        where = f"line {ins.line}"
        if ins.cmd in METADATA:
            steps.append(MetadataStep(key))
        elif ins.cmd in ("COPY", "ADD"):
            steps.append(_copy_step(key, state, where))
        elif ins.cmd == "RUN":
            raise CannotAppend(
                f"{where}: RUN comes after the change; only COPY/ADD from the context and "
                "metadata can be appended"
            )
        else:
            raise CannotAppend(f"{where}: {ins.cmd} is outside what append can build")
    return steps


def _copy_step(key: InstructionKey, state: StepState, where: str) -> CopyStep:
    ins = key.instruction
    if ins.heredocs or any(arg.startswith("<<") for arg in ins.args):
        raise CannotAppend(f"{where}: {ins.cmd} with a heredoc")
    for flag in ins.flags:
        name = flag[2:].split("=", 1)[0]
        if name == "from":
            raise CannotAppend(f"{where}: {ins.cmd} --from takes files from another stage or image")
        if name not in _COPY_FLAGS:
            raise CannotAppend(f"{where}: {ins.cmd} --{name} is not supported by append")
    if len(ins.args) < 2:
        raise CannotAppend(f"{where}: {ins.cmd} needs a source and a destination")

    def word(text: str) -> str:
        # JSON form: variables expand, but there are no quotes to process.
        return expand(text, state.scope) if ins.json_form else process_word(text, state.scope)

    sources = tuple(word(arg) for arg in ins.args[:-1])
    if ins.cmd == "ADD" and any(_REMOTE.match(source) for source in sources):
        raise CannotAppend(f"{where}: ADD of a URL or git repository")
    owner = None
    chown = ins.flag("chown")
    if chown is not None:
        value = process_word(chown, state.scope)
        match = _NUMERIC_OWNER.match(value)
        if match is None:
            raise CannotAppend(
                f"{where}: --chown={value} names a user or group; the image's /etc/passwd "
                "would decide its ids"
            )
        uid = int(match.group(1))
        # A uid without a gid: the builder uses the uid as the gid (measured with buildah).
        owner = (uid, int(match.group(2)) if match.group(2) else uid)
    chmod = None
    raw_mode = ins.flag("chmod")
    if raw_mode is not None:
        mode = process_word(raw_mode, state.scope)
        if not re.fullmatch(r"[0-7]{1,4}", mode):
            raise CannotAppend(f"{where}: --chmod={mode} is not an octal mode")
        chmod = int(mode, 8)
    return CopyStep(
        key=key,
        sources=sources,
        dest=word(ins.args[-1]),
        workdir=state.workdir_path,
        owner=None if owner == (0, 0) else owner,
        chmod=chmod,
    )

"""``COPY --link`` / ``ADD --link``: which instructions carry the flag, and in which stages.

BuildKit builds a ``--link`` layer on its own and rebases it onto whatever lies below, so a
code-only change need not pull the layers under it; builders that do not know the flag reject
the whole Dockerfile at that step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pipeline_kit.dockerfile.stages import Instruction, Stage

_COPIES = ("COPY", "ADD")
_FALSE = ("false", "0")


def link_flag(ins: Instruction) -> str | None:
    """The raw ``--link`` value of a COPY/ADD ("" for a bare ``--link``), None without one."""
    if ins.cmd not in _COPIES:
        return None
    return ins.flag("link")


def is_linked(ins: Instruction) -> bool:
    """Whether the instruction is a ``--link`` copy (``--link``, ``--link=true``)."""
    value = link_flag(ins)
    return value is not None and value.lower() not in _FALSE


def with_link_flag(stages: Iterable[Stage]) -> Iterator[Instruction]:
    """Every COPY/ADD that names ``--link`` at all (``--link=false`` included)."""
    for stage in stages:
        for ins in stage.instructions:
            if link_flag(ins) is not None:
                yield ins

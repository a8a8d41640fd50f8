"""PK009: where BuildKit builds, the code stage's COPYs should be ``COPY --link``."""

from __future__ import annotations

from collections.abc import Iterator

from pipeline_kit.dockerfile.copy_link import link_flag
from pipeline_kit.dockerfile.stages import Instruction, Stage
from pipeline_kit.lint.model import Hit, LintInput

BUILDKIT = "buildkit"
MEASURED = (
    "measured on a fresh daemon with a registry cache, a code-only publish of an image with a "
    "1 GiB deps layer took 5.5 s with plain COPY and 0.20 s with COPY --link"
)


def code_copy_without_link(lint: LintInput) -> Iterator[Hit]:
    if lint.builder != BUILDKIT or lint.code_stage is None:
        return
    stage = lint.graph.stages[lint.code_stage]
    for ins in stage.instructions:
        if ins.cmd != "COPY" or link_flag(ins) is not None:  # an explicit --link=false is a choice
            continue
        if lint.code_line is not None and ins.line < lint.code_line:
            continue  # base or deps of the same stage: a code change leaves it a cache hit
        if _run_after(lint, stage, ins):
            continue  # that RUN needs every layer below, so the builder pulls them anyway
        yield Hit(
            lint.dockerfile,
            ins.line,
            f"COPY in the code stage '{stage.label}' without --link: on every code change "
            "BuildKit rebuilds this layer on top of the layers below, which a fresh builder "
            "must pull first; a --link layer is built alone and rebased onto them without "
            f"pulling them ({MEASURED}).",
            fix=f"Write `COPY --link {' '.join((*ins.flags, *ins.args))}`, unless the "
            "destination goes through a symlink, or relies on the owner or mode of a "
            "directory, in the layers below (--link copies into an empty directory). buildah "
            "before 1.41 rejects --link.",
        )


def _run_after(lint: LintInput, stage: Stage, copy: Instruction) -> bool:
    """Whether a RUN comes after ``copy`` on the way to the target: it runs on the whole file
    system, so a code change that reaches it pulls every layer below, --link or not."""
    chain = lint.chain(lint.target)
    indexes = [s.index for s in chain]
    stages = chain[indexes.index(stage.index) :] if stage.index in indexes else [stage]
    after = [ins for s in stages for ins in s.instructions if ins.line > copy.line]
    return any(ins.cmd == "RUN" for ins in after)

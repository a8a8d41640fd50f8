"""The platforms a build runs programs as: each ``RUN`` step executes as its stage's platform.

A stage's platform is its ``FROM --platform=`` (``$BUILDPLATFORM`` makes a cross-compiling
stage run natively), else the platform of the stage it starts from, else the platform being
built. Copying another platform's files needs nothing of the machine; running them needs that
machine to run the architecture's programs (natively, or through an emulator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline_kit.dockerfile.expand import expand
from pipeline_kit.dockerfile.platform import Platform, parse_platform
from pipeline_kit.dockerfile.stages import Instruction, StageGraph, parse_dockerfile


@dataclass(frozen=True)
class PlatformRun:
    """The first ``RUN`` step a build executes as ``platform``."""

    platform: Platform
    built: Platform  # the platform of the image being built that takes that step
    instruction: Instruction


def stage_platforms(graph: StageGraph, target: str | None, built: Platform) -> dict[int, Platform]:
    """The platform each stage the target needs runs as, by stage index."""
    scope = dict(graph.global_args)
    found: dict[int, Platform] = {}
    for index in graph.upstream(graph.target(target).index):  # file order: parents first
        stage = graph.stages[index]
        flag = stage.instructions[0].flag("platform")
        if flag:
            where = f"{graph.source}:{stage.line}: FROM --platform"
            found[index] = parse_platform(expand(flag, scope), what=where)
        elif stage.parent is not None:
            found[index] = found[stage.parent]
        else:
            found[index] = built
    return found


def runs_by_platform(
    text: str,
    *,
    source: str,
    build_args: Mapping[str, str],
    target: str | None,
    platforms: Sequence[Platform],
) -> list[PlatformRun]:
    """For each platform some ``RUN`` step of the build executes as, the first such step, in
    the order of ``platforms`` (the Dockerfile is read for each, as BuildKit reads it)."""
    runs: dict[Platform, PlatformRun] = {}
    for built in platforms:
        graph = parse_dockerfile(text, source=source, build_args=build_args, platform=built)
        for index, platform in stage_platforms(graph, target, built).items():
            if platform in runs:
                continue
            step = next((i for i in graph.stages[index].instructions if i.cmd == "RUN"), None)
            if step is not None:
                runs[platform] = PlatformRun(platform, built, step)
    return list(runs.values())

"""``pipeline-kit detect``: which layers changed between two commits, and their keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pipeline_kit.ci.context import DEFAULT_DOTENV
from pipeline_kit.errors import ExitCode
from pipeline_kit.report.outputs import check_destination, export


@dataclass(frozen=True)
class DetectOptions:
    config_path: Path | None
    cwd: Path
    base: str | None = None
    head: str | None = None
    merge_base: bool = False
    worktree: bool | None = None  # None: the working tree when local, dirty and no --head
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None  # overrides the config's platform
    format: str = "text"
    dotenv: Path = DEFAULT_DOTENV
    environ: Mapping[str, str] = field(default_factory=dict)


def run(options: DetectOptions, out: TextIO) -> int:
    from pipeline_kit.adapters.git import Git
    from pipeline_kit.ci.context import from_environ
    from pipeline_kit.config.loader import load_config
    from pipeline_kit.detect.changes import detect_changes
    from pipeline_kit.detect.revisions import choose_range
    from pipeline_kit.report import detect as report

    check_destination(options.format, options.environ)
    config = load_config(options.config_path, options.cwd).with_build_args(options.build_args)
    config = config.with_platform(options.platform)
    ci = from_environ(options.environ)
    with Git(config.root) as git:
        rng = choose_range(
            git,
            ci,
            base=options.base,
            head=options.head,
            merge_base=options.merge_base,
            worktree=options.worktree,
        )
        detection = detect_changes(git, config, rng)

    if options.format == "json":
        out.write(report.as_json(detection))
        return ExitCode.OK
    export(
        options.format,
        report.outputs(detection),
        environ=options.environ,
        dotenv=options.cwd / options.dotenv,
        summary=report.github_summary(detection),
    )
    out.write(report.as_text(detection))
    return ExitCode.OK

"""``pipeline-kit detect``: which layers changed between two commits, and their keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pipeline_kit.errors import ExitCode, InputError

FORMATS = ("text", "json", "github", "gitlab")


@dataclass(frozen=True)
class DetectOptions:
    config_path: Path | None
    cwd: Path
    base: str | None = None
    head: str | None = None
    merge_base: bool = False
    worktree: bool | None = None  # None: the working tree when local, dirty and no --head
    build_args: Mapping[str, str] = field(default_factory=dict)
    format: str = "text"
    dotenv: Path = Path("pipeline-kit.env")
    environ: Mapping[str, str] = field(default_factory=dict)


def run(options: DetectOptions, out: TextIO) -> int:
    from pipeline_kit.adapters.git import Git
    from pipeline_kit.changes import detect_changes
    from pipeline_kit.ci_context import from_environ
    from pipeline_kit.config import load_config
    from pipeline_kit.report import detect as report
    from pipeline_kit.revisions import choose_range

    config = load_config(options.config_path, options.cwd).with_build_args(options.build_args)
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
    elif options.format == "github":
        output = options.environ.get("GITHUB_OUTPUT")
        if not output:
            raise InputError(
                "--format github: GITHUB_OUTPUT is not set, so there is nowhere to write "
                "step outputs.",
                hint="Use it inside GitHub Actions (or act), or choose --format json.",
            )
        with open(output, "a", encoding="utf-8") as fh:
            fh.write(report.github_outputs(detection))
        summary = options.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(report.github_summary(detection))
        out.write(report.as_text(detection))
    elif options.format == "gitlab":
        dotenv = options.dotenv if options.dotenv.is_absolute() else options.cwd / options.dotenv
        dotenv.write_text(report.gitlab_dotenv(detection), encoding="utf-8")
        out.write(report.as_text(detection))
    else:
        out.write(report.as_text(detection))
    return ExitCode.OK

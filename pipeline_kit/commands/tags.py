"""``pipeline-kit tags``: the tags this build gets, from the CI context (or git, locally)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline_kit.errors import ExitCode, InputError
from pipeline_kit.report.outputs import DEFAULT_DOTENV

if TYPE_CHECKING:
    from pipeline_kit.adapters.git import Git
    from pipeline_kit.ci_context import CIContext


@dataclass(frozen=True)
class TagsOptions:
    config_path: Path | None
    cwd: Path
    head: str | None = None
    format: str = "text"
    environ: Mapping[str, str] = field(default_factory=dict)
    dotenv: Path = DEFAULT_DOTENV


def run(options: TagsOptions, out: TextIO) -> int:
    from pipeline_kit.config import load_config
    from pipeline_kit.report.outputs import check_destination, export, record_json
    from pipeline_kit.tags import compute_tags, rules_from_section

    check_destination(options.format, options.environ)
    config = load_config(options.config_path, options.cwd)
    ci = resolve_context(config.root, options.environ, options.head)
    tags = compute_tags(ci, rules_from_section(config.section("tags")))
    names = [tag.name for tag in tags]
    record = {
        "image": config.image,
        "tags": names,
        "references": [f"{config.image}:{name}" for name in names] if config.image else [],
        "rules": {tag.name: tag.rule for tag in tags},
        "provider": ci.provider,
    }
    if options.format == "json":
        out.write(json.dumps(record, indent=2) + "\n")
        return ExitCode.OK
    outputs = [("tags", ",".join(names)), record_json(record)]
    export(options.format, outputs, environ=options.environ, dotenv=options.cwd / options.dotenv)
    for tag in tags:
        out.write(f"{tag.name}\t{tag.rule}\n")
    return ExitCode.OK


def resolve_context(
    root: Path, environ: Mapping[str, str], head: str | None, git: Git | None = None
) -> CIContext:
    """The CI context, with git's facts filled in on a local run (``git``: one already open)."""
    from pipeline_kit.ci_context import from_environ

    ci = from_environ(environ)
    if ci.is_ci and head is None:
        return ci
    if git is not None:
        return _with_git(ci, git, head)
    from pipeline_kit.adapters.git import Git

    with Git(root) as opened:
        return _with_git(ci, opened, head)


def _with_git(ci: CIContext, git: Git, head: str | None) -> CIContext:
    from pipeline_kit.ci_context import with_git_facts

    rev = head or ci.sha or "HEAD"
    sha = git.resolve_commit(rev)
    if sha is None:
        raise InputError(f"--head {rev}: no such commit.", hint="Give a branch, tag or SHA.")
    if ci.is_ci:
        return dataclasses.replace(ci, sha=sha)
    return with_git_facts(ci, git, sha)

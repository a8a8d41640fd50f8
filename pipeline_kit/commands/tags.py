"""``pipeline-kit tags``: the tags this build gets, from the CI context (or git, locally)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline_kit.ci.context import DEFAULT_DOTENV, resolve_context
from pipeline_kit.errors import ExitCode

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class TagsOptions:
    config_path: Path | None
    cwd: Path
    head: str | None = None
    format: str = "text"
    environ: Mapping[str, str] = field(default_factory=dict)
    dotenv: Path = DEFAULT_DOTENV


def run(options: TagsOptions, out: TextIO) -> int:
    from pipeline_kit.config.loader import load_config
    from pipeline_kit.publish.tags import compute_tags, rules_from_section
    from pipeline_kit.report.outputs import check_destination, export, record_json

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

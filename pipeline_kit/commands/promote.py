"""``pipeline-kit promote SRC TAG...``: point tags at SRC's digest by registry operations only."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pipeline_kit.ci.context import DEFAULT_DOTENV
from pipeline_kit.errors import ExitCode


@dataclass(frozen=True)
class PromoteOptions:
    source: str  # repo:tag or repo@sha256:...
    targets: Sequence[str]  # tag (same repository) or repo:tag
    insecure_registries: tuple[str, ...] = ()
    format: str = "text"
    environ: Mapping[str, str] = field(default_factory=dict)
    dotenv: Path = DEFAULT_DOTENV  # relative to the working directory


def run(options: PromoteOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.adapters.registry.client import RegistryClient
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.publish.retag import point_tags
    from pipeline_kit.report.outputs import check_destination, export, record_json

    check_destination(options.format, options.environ)
    source = ImageRef.parse(options.source)
    targets = [ImageRef.parse(t) if "/" in t else source.with_tag(t) for t in options.targets]
    client = RegistryClient.connect(
        source.registry, options.environ, options.insecure_registries, log
    )
    digest = point_tags(client, source, targets)
    names = [str(t) for t in targets]
    record = {"source": str(source), "digest": digest, "tags": names}
    if options.format == "json":
        out.write(json.dumps(record) + "\n")
        return ExitCode.OK
    outputs = [("digest", digest), ("tags", ",".join(names)), record_json(record)]
    export(options.format, outputs, environ=options.environ, dotenv=options.dotenv)
    for name in names:
        out.write(f"{name} -> {digest}\n")
    return ExitCode.OK

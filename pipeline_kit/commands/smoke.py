"""``pipeline-kit smoke``: the inference gate against a running server."""

from __future__ import annotations

import sys
from typing import TextIO

from pipeline_kit.errors import ExitCode
from pipeline_kit.smoke.session import SmokeOptions, gate


def run(options: SmokeOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.report import smoke as report
    from pipeline_kit.report.outputs import check_destination, export

    check_destination(options.format, options.environ)
    verdict = gate(options, log)
    report.write_files(verdict, options)
    if options.format == "json":
        out.write(report.to_json_text(verdict))
    else:
        export(
            options.format,
            report.outputs(verdict),
            environ=options.environ,
            dotenv=options.cwd / options.dotenv,
        )
        out.write(report.as_text(verdict))
    return ExitCode.OK if verdict.passed else ExitCode.VERDICT

"""A command's results as CI outputs: GitHub step outputs and GitLab dotenv variables.

Every reporting command can write its results where the next step or job reads them:
``--format github`` appends ``name=value`` lines to ``$GITHUB_OUTPUT`` (and Markdown to
``$GITHUB_STEP_SUMMARY``), ``--format gitlab`` writes a dotenv report for
``artifacts: reports: dotenv``. Both print the text report as well, for the job log. One list of
(name, value) pairs feeds both: ``rebuild-from`` is the step output ``rebuild-from`` and the
variable ``PIPELINE_KIT_REBUILD_FROM``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from pipeline_kit.adapters.checkout import append_file, write_file
from pipeline_kit.errors import InputError

CI_FORMATS = ("github", "gitlab")
FORMATS = ("text", "json", *CI_FORMATS)
# GitLab refuses a dotenv report over 5 KiB, or with a value on several lines; the whole record
# is the step output `json` on GitHub and stays out of the dotenv report.
DOTENV_MAX_BYTES = 5 * 1024
_GITHUB_ONLY = frozenset({"json"})

Outputs = Sequence[tuple[str, str]]


def flag(value: bool) -> str:
    return "true" if value else "false"


def output_name(name: str) -> str:
    """A layer or field name as a step output name: ``Deps Stage`` -> ``deps-stage``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def variable_name(name: str) -> str:
    """A step output name as a dotenv variable (``rebuild-from``: ``PIPELINE_KIT_REBUILD_FROM``)."""
    return "PIPELINE_KIT_" + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def record_json(record: Mapping[str, Any]) -> tuple[str, str]:
    """The whole record as the ``json`` output (one line)."""
    return ("json", json.dumps(record, separators=(",", ":")))


def github_text(outputs: Outputs) -> str:
    """``name=value`` lines for ``$GITHUB_OUTPUT``; a value on several lines as a heredoc."""
    import secrets

    lines = []
    for name, value in outputs:
        if "\n" in value:
            delimiter = f"EOF_{secrets.token_hex(8)}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}")
        else:
            lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def dotenv_text(outputs: Outputs) -> str:
    """``PIPELINE_KIT_NAME=value`` lines: no quotes, no comments, one line each (GitLab's rules)."""
    lines = []
    for name, value in outputs:
        if name in _GITHUB_ONLY:
            continue
        if "\n" in value:
            raise ValueError(f"dotenv value of {name} spans lines")  # a bug, not an input
        lines.append(f"{variable_name(name)}={value}")
    return "\n".join(lines) + "\n"


def check_destination(fmt: str, environ: Mapping[str, str]) -> None:
    """Fail before any work when ``--format github`` has nowhere to write."""
    if fmt == "github" and not environ.get("GITHUB_OUTPUT"):
        raise InputError(
            "--format github: GITHUB_OUTPUT is not set, so there is nowhere to write step outputs.",
            hint="Use it inside GitHub Actions (or act), or choose --format json.",
        )


def export(
    fmt: str,
    outputs: Outputs,
    *,
    environ: Mapping[str, str],
    dotenv: Path,
    summary: str | None = None,
    log: TextIO | None = None,
) -> None:
    """Write ``outputs`` for ``fmt`` (github or gitlab); other formats write nothing."""
    check_destination(fmt, environ)
    if fmt == "github":
        append_file(Path(environ["GITHUB_OUTPUT"]), github_text(outputs))
        summary_file = environ.get("GITHUB_STEP_SUMMARY")
        if summary and summary_file:
            append_file(Path(summary_file), summary)
    elif fmt == "gitlab":
        text = dotenv_text(outputs)
        write_file(dotenv, text)
        if log is not None and len(text.encode()) > DOTENV_MAX_BYTES:
            log.write(
                f"pipeline-kit: warning: {dotenv} is {len(text.encode())} bytes; GitLab refuses "
                f"a dotenv report over {DOTENV_MAX_BYTES}.\n"
            )

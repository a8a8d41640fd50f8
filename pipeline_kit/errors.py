"""Exit codes and the one family of errors that reaches the user.

Every expected failure is a ``KitError`` carrying a message that names the input
and says what to do; ``cli.main`` is the single place that maps them to exit codes. Anything
else is a bug in the kit: ``crash_report`` says so, keeps the traceback, and the exit code is
3, never 1 (which CI reads as a verdict against the change).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path
from typing import TextIO

DEBUG_VARIABLE = "PIPELINE_KIT_DEBUG"


class ExitCode(IntEnum):
    OK = 0
    VERDICT = 1  # a verdict against the change: gate failed, lint findings, build failed
    USAGE = 2  # usage or configuration error
    INFRA = 3  # infrastructure (tool missing, registry unreachable, timeout) or a crash of the kit
    INTERRUPTED = 130


class KitError(Exception):
    """An error the user can act on. ``str(err)`` is the whole message."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigError(KitError):
    """The config file is missing, malformed or invalid."""


class InputError(KitError):
    """A command-line value, revision or Dockerfile the kit cannot use."""


class EnvironmentFault(KitError):
    """Something the kit needs from the machine is missing or broken."""

    exit_code = ExitCode.INFRA


def crash_report(exc: BaseException, environ: Mapping[str, str], err: TextIO) -> str:
    """Say on ``err`` that the kit failed (not the change), and where the traceback is.

    The traceback goes to ``<cache>/pipeline-kit/crash.log`` (printed in full too when
    ``PIPELINE_KIT_DEBUG`` is set); the message returned is the one line CI annotations show.
    """
    import traceback  # only on a crash

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    where = _write_crash_log(text, environ)
    message = (
        f"internal error: {type(exc).__name__}: {exc} (a bug in pipeline-kit, not in the change)"
    )
    if environ.get(DEBUG_VARIABLE):
        err.write(text)
        shown = f"traceback above, and in {where}" if where else "traceback above"
    elif where:
        shown = f"the traceback is in {where}; {DEBUG_VARIABLE}=1 prints it here"
    else:
        shown = f"{DEBUG_VARIABLE}=1 prints the traceback"
    err.write(f"pipeline-kit: {message}. {shown}.\n")
    return message


def _write_crash_log(text: str, environ: Mapping[str, str]) -> Path | None:
    base = environ.get("XDG_CACHE_HOME") or (
        os.path.join(environ["HOME"], ".cache") if environ.get("HOME") else None
    )
    if base is None:
        return None
    path = Path(base) / "pipeline-kit" / "crash.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError:
        return None
    return path

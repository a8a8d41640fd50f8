"""Exit codes and the one family of errors that reaches the user.

Every expected failure is a ``KitError`` carrying a message that names the input
and says what to do; ``cli.main`` is the single place that maps them to exit codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    VERDICT = 1  # a verdict against the change: gate failed, lint findings, build failed
    USAGE = 2  # usage or configuration error
    INFRA = 3  # infrastructure: tool missing, registry unreachable, timeout
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

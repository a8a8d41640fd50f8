"""What BuildKit refuses that its parser lets through: flags, argument counts, HEALTHCHECK
values and ONBUILD triggers, checked before any build starts, with the file and line.

The rules are those of BuildKit's ``instructions`` package (v0.32); each one is compared with
the real ``buildctl`` in ``tests/integration/build/test_buildkit_semantics.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from pipeline_kit.errors import InputError

if TYPE_CHECKING:
    from pipeline_kit.dockerfile.stages import Instruction

_STRING, _BOOL, _STRINGS = "string", "bool", "strings"  # strings: may be given more than once
FLAGS: Mapping[str, Mapping[str, str]] = {
    "ADD": {
        "chown": _STRING,
        "chmod": _STRING,
        "link": _BOOL,
        "keep-git-dir": _BOOL,
        "checksum": _STRING,
        "exclude": _STRINGS,
        "unpack": _BOOL,
    },
    "COPY": {
        "from": _STRING,
        "chown": _STRING,
        "chmod": _STRING,
        "link": _BOOL,
        "parents": _BOOL,
        "exclude": _STRINGS,
    },
    "RUN": {"mount": _STRINGS, "network": _STRING, "security": _STRING, "device": _STRINGS},
    "FROM": {"platform": _STRING},
    "HEALTHCHECK": {
        "interval": _STRING,
        "timeout": _STRING,
        "start-period": _STRING,
        "start-interval": _STRING,
        "retries": _STRING,
    },
}
# BuildKit reads no flags for these, and does not complain about any.
_FLAGS_IGNORED = frozenset({"ARG", "STOPSIGNAL"})
_AT_LEAST_ONE = frozenset({"ARG", "ENV", "EXPOSE", "LABEL", "VOLUME", "HEALTHCHECK", "ONBUILD"})
_EXACTLY_ONE = frozenset({"WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"})
_NETWORKS = ("default", "none", "host")
_SECURITY = ("sandbox", "insecure")
_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_DURATION = re.compile(r"^[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9}
_UNIT_NS.update({"m": 60 * 10**9, "h": 3600 * 10**9})
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_HEALTHCHECK_DURATIONS = ("interval", "timeout", "start-period", "start-interval")


def check_instructions(instructions: Iterable[Instruction], source: str) -> None:
    """Refuse what BuildKit would refuse before building, naming ``source:line``."""
    for ins in instructions:
        problem = _problem(ins)
        if problem is not None:
            message, hint = problem
            raise InputError(
                f"{source}:{ins.line}: {message}",
                hint=hint or "BuildKit refuses it before building anything; fix the line.",
            )


def _problem(ins: Instruction) -> tuple[str, str | None] | None:
    flags, problem = _flags(ins)
    if problem is not None:
        return problem
    if ins.cmd in _AT_LEAST_ONE and not ins.args and ins.sub_cmd is None:
        return f"{ins.cmd} requires at least one argument.", None
    if ins.cmd in _EXACTLY_ONE and len(ins.args) != 1:
        return f"{ins.cmd} requires exactly one argument.", None
    if ins.cmd == "SHELL":
        if not ins.json_form:
            return "SHELL requires its arguments in JSON form.", 'Write SHELL ["/bin/sh", "-c"].'
        if not ins.args:
            return "SHELL requires at least one argument.", None
    if ins.cmd == "ONBUILD":
        trigger = (ins.sub_cmd or "").upper()
        if trigger == "ONBUILD":
            return "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed.", None
        if trigger in ("FROM", "MAINTAINER"):
            return f"{trigger} isn't allowed as an ONBUILD trigger.", None
    if ins.cmd == "HEALTHCHECK":
        return _healthcheck(ins, flags)
    if ins.cmd == "RUN":
        return _run(flags)
    return None


def _flags(ins: Instruction) -> tuple[dict[str, list[str]], tuple[str, str | None] | None]:
    """The flags as BuildKit's BFlags reads them: name -> values, or the first problem."""
    found: dict[str, list[str]] = {}
    if ins.cmd in _FLAGS_IGNORED:
        return found, None
    allowed = FLAGS.get(ins.cmd, {})
    for raw in ins.flags:
        body = raw[2:] if raw.startswith("--") else raw
        name, eq, value = body.partition("=")
        kind = allowed.get(name)
        if kind is None:
            known = ", ".join(f"--{flag}" for flag in allowed) or "none"
            return found, (
                f"{ins.cmd} has no flag --{name}.",
                f"Flags {ins.cmd} takes: {known}.",
            )
        if name in found and kind != _STRINGS:
            return found, (f"{ins.cmd}: the flag --{name} is given twice.", None)
        if kind == _BOOL:
            if eq and value == "":
                return found, (f"{ins.cmd}: the flag --{name}= has no value.", None)
            if value.lower() not in ("", "true", "false"):
                return found, (
                    f"{ins.cmd}: --{name} takes true or false, not {value!r}.",
                    None,
                )
        elif not eq:
            return found, (f"{ins.cmd}: the flag --{name} needs a value (--{name}=VALUE).", None)
        found.setdefault(name, []).append(value)
    return found, None


def _healthcheck(ins: Instruction, flags: Mapping[str, list[str]]) -> tuple[str, str | None] | None:
    kind = ins.args[0].upper()
    if kind not in ("CMD", "NONE"):
        return f"unknown HEALTHCHECK type {ins.args[0]!r}.", "Write HEALTHCHECK CMD ... or NONE."
    if kind == "NONE" and len(ins.args) > 1:
        return "HEALTHCHECK NONE takes no arguments.", None
    if kind == "CMD" and len(ins.args) == 1:
        return "HEALTHCHECK CMD needs a command after it.", None
    for name in _HEALTHCHECK_DURATIONS:
        for value in flags.get(name, ()):
            nanoseconds = _duration_ns(value)
            if nanoseconds is None:
                return (
                    f"HEALTHCHECK --{name}={value}: not a duration.",
                    "Give a number with a unit: 30s, 5m, 1h30m (ms, s, m, h).",
                )
            if nanoseconds != 0 and nanoseconds < 10**6:
                return f"HEALTHCHECK --{name}={value}: cannot be less than 1ms.", None
    for value in flags.get("retries", ()):
        if not re.fullmatch(r"[-+]?[0-9]+", value):
            return f"HEALTHCHECK --retries={value}: not a whole number.", None
        if int(value) < 0:
            return f"HEALTHCHECK --retries={value}: cannot be negative.", None
    return None


def _duration_ns(text: str) -> int | None:
    """Go's ``time.ParseDuration``, in nanoseconds; "" reads as unset (0), as BuildKit does."""
    if text in ("", "0", "+0", "-0"):
        return 0
    if not _DURATION.match(text):
        return None
    sign = -1 if text.startswith("-") else 1
    total = 0.0
    for number, unit in _DURATION_PART.findall(text.lstrip("+-")):
        if number in ("", "."):
            return None
        total += float(number) * _UNIT_NS[unit]
    return sign * int(total)


def _run(flags: Mapping[str, list[str]]) -> tuple[str, str | None] | None:
    for value in flags.get("network", ()):
        if value not in _NETWORKS:
            return f"RUN --network={value}: not a network mode.", f"Use one of {_NETWORKS}."
    for value in flags.get("security", ()):
        if value not in _SECURITY:
            return f"RUN --security={value}: not a security mode.", f"Use one of {_SECURITY}."
    for spec in flags.get("mount", ()):
        for part in spec.split(","):
            key, _, value = part.partition("=")
            if key.strip().lower() == "type" and value.strip().lower() not in _MOUNT_TYPES:
                return (
                    f"RUN --mount: unsupported mount type {value.strip()!r}.",
                    f"Use one of {', '.join(_MOUNT_TYPES)}.",
                )
    return None

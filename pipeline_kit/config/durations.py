"""Durations as the config writes them (``90s``, ``30m``, ``336h``, ``14d``)."""

from __future__ import annotations

import re

from pipeline_kit.errors import InputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration(text: str, *, what: str) -> int:
    """Seconds in ``text``; ``what`` names the input in the error (a flag or a config key)."""
    match = _DURATION.match(text)
    if match is None:
        raise InputError(
            f"{what}: '{text}' is not a duration.",
            hint="Write a whole number with s, m, h or d, e.g. 90s, 30m, 336h, 14d.",
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def go_duration(seconds: int) -> str:
    """The same span as Go's time.ParseDuration reads it (what Kaniko's flags take)."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"

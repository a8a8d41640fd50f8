from __future__ import annotations

import pytest

from pipeline_kit.config.durations import go_duration, parse_duration
from pipeline_kit.errors import InputError


@pytest.mark.parametrize(
    ("text", "seconds", "go"),
    [("90s", 90, "90s"), ("30m", 1800, "30m"), ("336h", 1209600, "336h"), ("14d", 1209600, "336h")],
)
def test_durations_round_trip_to_go(text: str, seconds: int, go: str) -> None:
    assert parse_duration(text, what="cache.ttl") == seconds
    assert go_duration(seconds) == go


def test_bad_duration_names_the_input() -> None:
    with pytest.raises(InputError, match=r"--ttl: '2 weeks' is not a duration"):
        parse_duration("2 weeks", what="--ttl")

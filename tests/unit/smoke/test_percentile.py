"""The gate's nearest-rank percentile (pipeline_kit.smoke.gate.percentile), checked as a table.

Nearest rank: sort the n values and take the one at rank ceil(p/100 * n), 1-based, at least 1;
always one of the values, never an interpolation between two.
"""

from __future__ import annotations

import random

import pytest

from pipeline_kit.smoke.gate import percentile

ONE_TO = {n: [float(value) for value in range(1, n + 1)] for n in (20, 21, 100)}


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([0.7], 95, 0.7),  # one value: it is every percentile
        ([0.7], 0, 0.7),
        ([0.2, 0.9], 95, 0.9),  # rank ceil(1.9) = 2
        ([0.2, 0.9], 50, 0.2),  # rank ceil(1.0) = 1
        ([0.2, 0.9], 51, 0.9),  # rank ceil(1.02) = 2
        (ONE_TO[20], 95, 19.0),  # rank ceil(19.0) = 19: the slowest of 20 is left out
        (ONE_TO[21], 95, 20.0),  # rank ceil(19.95) = 20
        (ONE_TO[20], 100, 20.0),  # p100 is the largest
        (ONE_TO[20], 50, 10.0),
        (ONE_TO[20], 0, 1.0),  # rank 0 becomes 1: the smallest
        (ONE_TO[100], 95, 95.0),
        (ONE_TO[100], 99, 99.0),
        ([3.0, 1.0, 2.0], 50, 2.0),  # unsorted input: ranked after sorting
        ([5.0, 0.1, 9.0, 0.3], 95, 9.0),
        ([5.0, 0.1, 9.0, 0.3], 25, 0.1),
        ([5.0, 0.1, 9.0, 0.3], 75, 5.0),
        ([0.5, 0.5, 0.1], 95, 0.5),  # repeated values
    ],
)
def test_nearest_rank_percentile(values: list[float], pct: float, expected: float) -> None:
    assert percentile(values, pct) == expected


def test_order_does_not_matter_and_the_input_is_not_changed() -> None:
    shuffled = ONE_TO[21][:]
    random.Random(7).shuffle(shuffled)
    before = shuffled[:]
    assert percentile(shuffled, 95) == 20.0
    assert shuffled == before

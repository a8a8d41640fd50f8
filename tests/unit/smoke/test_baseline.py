"""The comparison with a baseline, each limit both ways, and the stored result read back."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pipeline_kit.smoke.baseline import (
    BadBaseline,
    BaselinePlan,
    GateResult,
    compare,
    result_of,
)
from pipeline_kit.smoke.gate import LoadFigures, SmokeCase, SmokePlan, SmokeRequest, SmokeVerdict
from pipeline_kit.smoke.protocols import OpenAIChat

FAMOUS = SmokeRequest("Shall I compare thee", name="famous", max_tokens=16)
OTHER = SmokeRequest("When in disgrace", name="other", max_tokens=16)


def verdict(
    answers: dict[SmokeRequest, list[tuple[str, float]]],
    load: LoadFigures | None = None,
    stream: bool = False,
    ttft: float | None = None,
) -> SmokeVerdict:
    plan = SmokePlan("http://127.0.0.1:1", OpenAIChat(), "m", tuple(answers), stream=stream)
    judged = SmokeVerdict(plan, load=load)
    for request, pairs in answers.items():
        for output, seconds in pairs:
            case = SmokeCase(request.name, True, "", seconds, output, len(output.split()), ttft)
            judged.cases.append(case)
            judged.answers.append((request, case))
    return judged


def baseline_of(judged: SmokeVerdict, trusted: bool = True) -> GateResult:
    stored = result_of(judged, "r@sha256:" + "a" * 64, "refs/heads/main", trusted, "2026-01-01")
    return GateResult.from_json(stored.to_json())  # as the next gate reads it


def by_name(cases: list[SmokeCase]) -> dict[str, SmokeCase]:
    return {case.name: case for case in cases}


BASE = verdict({FAMOUS: [("to a summer's day", 0.2)], OTHER: [("with fortune", 0.2)]})


def test_a_stored_result_reads_back_as_written() -> None:
    judged = verdict({FAMOUS: [("a", 0.1), ("a", 0.3)]}, load=LoadFigures(8, 1, 2.0, 40.0, 0.4,
                                                                          None))  # fmt: skip
    judged.metrics = {"requests": 10.0}
    back = baseline_of(judged)
    (sample,) = back.samples
    assert sample.outputs == ("a", "a") and sample.seconds == (0.1, 0.3)
    assert back.load == judged.load and back.metrics == {"requests": 10.0}
    assert back.trusted and back.ref == "refs/heads/main" and back.protocol == "openai-chat"


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"version": 2}', json.dumps({"version": 1, "image": "x"}).encode()],
)
def test_a_result_the_kit_did_not_write_is_refused_by_name(data: bytes) -> None:
    with pytest.raises(BadBaseline, match=r"version|not a gate result"):
        GateResult.from_json(data)


def test_a_trusted_flag_must_be_true_itself_not_truthy() -> None:
    document = json.loads(baseline_of(BASE).to_json())
    document["trusted"] = "yes"
    assert GateResult.from_json(json.dumps(document).encode()).trusted is False


def test_exact_outputs_match_and_a_changed_one_fails_naming_where() -> None:
    same = by_name(compare(BaselinePlan(), BASE, baseline_of(BASE)))
    assert same["baseline: famous"].passed and same["baseline: other"].passed
    changed = verdict({FAMOUS: [("to a winter's night", 0.2)], OTHER: [("with fortune", 0.2)]})
    cases = by_name(compare(BaselinePlan(), changed, baseline_of(BASE)))
    failed = cases["baseline: famous"]
    assert not failed.passed and cases["baseline: other"].passed
    assert failed.message.startswith("output differs from character 6")
    assert failed.baseline == "to a summer's day" and failed.output == "to a winter's night"


def test_prefix_compares_only_the_first_characters() -> None:
    longer = verdict({FAMOUS: [("to a summer's night", 0.2)]})
    plan = BaselinePlan(output="prefix", prefix=12)
    assert by_name(compare(plan, longer, baseline_of(BASE)))["baseline: famous"].passed
    strict = dataclasses.replace(plan, prefix=15)
    failed = by_name(compare(strict, longer, baseline_of(BASE)))["baseline: famous"]
    assert not failed.passed and "first 15 characters differ from character 15" in failed.message


def test_similarity_has_a_floor_both_ways() -> None:
    near = verdict({FAMOUS: [("to a summer's days", 0.2)]})
    plan = BaselinePlan(output="similarity", min_similarity=0.9)
    assert by_name(compare(plan, near, baseline_of(BASE)))["baseline: famous"].passed
    far = verdict({FAMOUS: [("entirely other words", 0.2)]})
    failed = by_name(compare(plan, far, baseline_of(BASE)))["baseline: famous"]
    assert not failed.passed and "similarity 0." in failed.message


def test_output_none_compares_nothing_but_shows_both() -> None:
    far = verdict({FAMOUS: [("entirely other words", 0.2)]})
    case = by_name(compare(BaselinePlan(output="none"), far, baseline_of(BASE)))["baseline: famous"]
    assert case.passed and "to a summer's day" in case.message


def test_a_new_prompt_is_said_and_not_compared() -> None:
    new = SmokeRequest("A new prompt", name="new", max_tokens=16)
    cases = by_name(compare(BaselinePlan(), verdict({new: [("x", 0.1)]}), baseline_of(BASE)))
    assert cases["baseline: new"].passed and "not in the baseline" in cases["baseline: new"].message
    assert "baseline: latency p95" not in cases  # nothing matched, nothing to take a ratio of


@pytest.mark.parametrize(
    ("seconds", "passed"),
    [(0.29, True), (0.31, False), (0.6, False)],  # 1.5x of 0.2 is 0.3
)
def test_the_latency_ratio_both_ways(seconds: float, passed: bool) -> None:
    plan = BaselinePlan(max_latency_ratio=1.5, latency_slack=0.0)
    candidate = verdict({FAMOUS: [("to a summer's day", seconds)]})
    case = by_name(compare(plan, candidate, baseline_of(BASE)))["baseline: latency p95"]
    assert case.passed is passed, case.message
    assert f"{seconds / 0.2:.2f}x, at most 1.5x" in case.message


def test_a_ratio_of_milliseconds_fails_only_past_the_slack() -> None:
    fast = verdict({FAMOUS: [("to a summer's day", 0.002)]})
    twice = verdict({FAMOUS: [("to a summer's day", 0.004)]})
    plan = BaselinePlan(max_latency_ratio=1.2, latency_slack=0.05)
    assert by_name(compare(plan, twice, baseline_of(fast)))["baseline: latency p95"].passed
    no_slack = dataclasses.replace(plan, latency_slack=0.0)
    assert not by_name(compare(no_slack, twice, baseline_of(fast)))["baseline: latency p95"].passed


def test_time_to_first_token_is_compared_only_when_both_streamed() -> None:
    base = verdict({FAMOUS: [("x", 0.2)]}, stream=True, ttft=0.1)
    slow = verdict({FAMOUS: [("x", 0.2)]}, stream=True, ttft=0.3)
    plan = BaselinePlan(max_ttft_ratio=2.0, latency_slack=0.0)
    case = by_name(compare(plan, slow, baseline_of(base)))["baseline: time to first token p95"]
    assert not case.passed and "3.00x" in case.message
    unstreamed = verdict({FAMOUS: [("x", 0.2)]})
    cases = by_name(compare(plan, unstreamed, baseline_of(base)))
    assert "baseline: time to first token p95" not in cases


@pytest.mark.parametrize(("rate", "passed"), [(90.0, True), (70.0, False)])
def test_throughput_under_load_against_the_baseline(rate: float, passed: bool) -> None:
    base = verdict({FAMOUS: [("x", 0.2)]}, load=LoadFigures(16, 0, 1.0, 100.0, 0.2, None))
    candidate = verdict({FAMOUS: [("x", 0.2)]}, load=LoadFigures(16, 0, 1.0, rate, 0.2, None))
    plan = BaselinePlan(min_throughput_ratio=0.8)
    case = by_name(compare(plan, candidate, baseline_of(base)))["baseline: load tokens per second"]
    assert case.passed is passed and "at least 0.8x" in case.message

"""The gate against what runs now: a passing gate's result kept as a baseline, and compared.

A gate that passes on a digest records what it saw (each prompt's outputs, token counts,
latencies and time to first token, the load's figures, the server's metrics) as a JSON
document; ``session.py`` attaches it to the digest as an OCI referrer. The next gate reads the
result of the digest it would replace (``stable`` by default) and compares per prompt: the
output (exact for greedy decoding, or a prefix or a similarity ratio), token counts side by
side, and latency, time to first token and throughput as ratios of the baseline's.

Latencies of milliseconds vary by more than any ratio from one run to the next, so a ratio
fails only when the candidate is also past the baseline by more than ``latency_slack``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_kit.smoke.gate import (
    LoadFigures,
    SmokeCase,
    SmokeRequest,
    SmokeVerdict,
    percentile,
)

ARTIFACT_TYPE = "application/vnd.pipeline-kit.smoke-result.v1+json"
OUTPUT_MODES = ("exact", "prefix", "similarity", "none")
VERSION = 1


class BadBaseline(ValueError):
    """A stored result the kit cannot read."""


@dataclass(frozen=True)
class BaselinePlan:
    reference: str = "stable"  # a tag or digest in the image's repository
    record: bool = True  # attach this gate's result to the judged digest when it passes
    record_untrusted: bool = False  # also in an untrusted run (a pull request): --record alone
    required: bool = False  # no baseline: fail (True) or say so and compare nothing
    output: str = "exact"  # one of OUTPUT_MODES
    prefix: int = 32  # characters that must match, for output: prefix
    min_similarity: float = 0.9  # for output: similarity (difflib's ratio, 0 to 1)
    max_latency_ratio: float | None = None  # candidate p95 over the baseline's
    max_ttft_ratio: float | None = None
    min_throughput_ratio: float | None = None  # load tokens per second over the baseline's
    latency_slack: float = 0.05  # seconds: a ratio fails only past the baseline by more


@dataclass(frozen=True)
class Sample:
    """One request's answers in a gate (its repeats in order)."""

    name: str
    prompt: str
    max_tokens: int
    outputs: tuple[str, ...]
    tokens: tuple[int, ...]
    seconds: tuple[float, ...]
    ttfts: tuple[float, ...]  # of the answers that streamed a token


@dataclass(frozen=True)
class GateResult:
    """What a passing gate saw, as the next gate reads it."""

    image: str  # repository@digest judged
    recorded: str  # RFC 3339
    ref: str  # the git ref the gate ran for
    trusted: bool  # the run was trusted (a protected ref or a local run)
    protocol: str
    model: str
    stream: bool
    samples: tuple[Sample, ...]
    load: LoadFigures | None = None
    metrics: Mapping[str, float] | None = None

    def to_json(self) -> bytes:
        document: dict[str, Any] = {
            "version": VERSION,
            "image": self.image,
            "recorded": self.recorded,
            "ref": self.ref,
            "trusted": self.trusted,
            "protocol": self.protocol,
            "model": self.model,
            "stream": self.stream,
            "requests": [
                {
                    "name": s.name,
                    "prompt": s.prompt,
                    "max_tokens": s.max_tokens,
                    "outputs": list(s.outputs),
                    "tokens": list(s.tokens),
                    "seconds": [round(x, 4) for x in s.seconds],
                    "ttfts": [round(x, 4) for x in s.ttfts],
                }
                for s in self.samples
            ],
            "load": None if self.load is None else vars(self.load),
            "metrics": dict(self.metrics or {}),
        }
        return json.dumps(document, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> GateResult:
        try:
            document = json.loads(data)
            if document.get("version") != VERSION:
                raise BadBaseline(f"version {document.get('version')!r}, the kit reads {VERSION}")
            load = document.get("load")
            return cls(
                image=str(document["image"]),
                recorded=str(document["recorded"]),
                ref=str(document.get("ref", "")),
                trusted=document["trusted"] is True,
                protocol=str(document["protocol"]),
                model=str(document["model"]),
                stream=bool(document["stream"]),
                samples=tuple(
                    Sample(
                        name=str(r["name"]),
                        prompt=str(r["prompt"]),
                        max_tokens=int(r["max_tokens"]),
                        outputs=tuple(str(o) for o in r["outputs"]),
                        tokens=tuple(int(t) for t in r["tokens"]),
                        seconds=tuple(float(x) for x in r["seconds"]),
                        ttfts=tuple(float(x) for x in r["ttfts"]),
                    )
                    for r in document["requests"]
                ),
                load=None if load is None else LoadFigures(**load),
                metrics={str(k): float(v) for k, v in (document.get("metrics") or {}).items()},
            )
        except BadBaseline:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            why = f"not a gate result the kit wrote ({type(exc).__name__}: {exc})"
            raise BadBaseline(why) from None


def result_of(
    verdict: SmokeVerdict, image: str, ref: str, trusted: bool, recorded: str
) -> GateResult:
    plan = verdict.plan
    return GateResult(
        image=image,
        recorded=recorded,
        ref=ref,
        trusted=trusted,
        protocol=plan.protocol.name,
        model=plan.model,
        stream=plan.stream,
        samples=samples_of(verdict),
        load=verdict.load,
        metrics=verdict.metrics or None,
    )


def samples_of(verdict: SmokeVerdict) -> tuple[Sample, ...]:
    grouped: dict[SmokeRequest, list[SmokeCase]] = {}
    for request, case in verdict.answers:
        grouped.setdefault(request, []).append(case)
    return tuple(
        Sample(
            name=request.name,
            prompt=request.prompt,
            max_tokens=request.max_tokens,
            outputs=tuple(c.output for c in cases),
            tokens=tuple(c.tokens or 0 for c in cases),
            seconds=tuple(c.seconds for c in cases),
            ttfts=tuple(c.ttft for c in cases if c.ttft is not None),
        )
        for request, cases in grouped.items()
    )


def compare(plan: BaselinePlan, verdict: SmokeVerdict, baseline: GateResult) -> list[SmokeCase]:
    """The candidate's answers against the baseline's, prompt by prompt, then as a whole."""
    theirs = {(s.prompt, s.max_tokens): s for s in baseline.samples}
    cases = []
    matched: list[tuple[Sample, Sample]] = []
    for mine in samples_of(verdict):
        label = f"baseline: {mine.name or _short(mine.prompt)}"
        other = theirs.get((mine.prompt, mine.max_tokens))
        if other is None:
            message = "not in the baseline (a new prompt, or other max_tokens): nothing compared"
            cases.append(SmokeCase(label, True, message, 0.0, mine.outputs[0]))
            continue
        matched.append((mine, other))
        cases.append(_compare_output(plan, label, mine, other))
    if not matched:
        return cases
    ratio_checks = (
        ("latency p95", plan.max_latency_ratio, [(m.seconds, o.seconds) for m, o in matched]),
        ("time to first token p95", plan.max_ttft_ratio,
         [(m.ttfts, o.ttfts) for m, o in matched] if verdict.plan.stream and baseline.stream
         else []),
    )  # fmt: skip
    for what, limit, pairs in ratio_checks:
        mine_all = [x for m, _ in pairs for x in m]
        theirs_all = [x for _, o in pairs for x in o]
        if limit is None or not mine_all or not theirs_all:
            continue
        cases.append(_ratio_case(plan, what, percentile(mine_all, 95), percentile(theirs_all, 95),
                                 limit))  # fmt: skip
    if plan.min_throughput_ratio is not None and verdict.load and baseline.load:
        mine_rate, their_rate = verdict.load.tokens_per_second, baseline.load.tokens_per_second
        ratio = mine_rate / their_rate if their_rate else float("inf")
        ok = ratio >= plan.min_throughput_ratio
        message = (
            f"{mine_rate:.1f} tokens/s under load against the baseline's {their_rate:.1f}: "
            f"{ratio:.2f}x, at least {plan.min_throughput_ratio:g}x"
        )
        cases.append(SmokeCase("baseline: load tokens per second", ok, message, 0.0))
    return cases


def _compare_output(plan: BaselinePlan, label: str, mine: Sample, other: Sample) -> SmokeCase:
    ours, base = mine.outputs[0], other.outputs[0]
    sides = (
        f"baseline {_quote(base)} ({other.tokens[0]} tokens, {_median(other.seconds):.3f}s); "
        f"candidate {_quote(ours)} ({mine.tokens[0]} tokens, {_median(mine.seconds):.3f}s)"
    )
    if plan.output == "none":
        return SmokeCase(label, True, f"output not compared; {sides}", 0.0, ours, baseline=base)
    if plan.output == "exact":
        ok = ours == base
        verdict = "same output" if ok else f"output differs from character {_split_at(ours, base)}"
    elif plan.output == "prefix":
        wanted = min(plan.prefix, len(base))
        ok = ours[:wanted] == base[:wanted]
        verdict = (
            f"the first {wanted} characters match"
            if ok
            else f"the first {wanted} characters differ from character {_split_at(ours, base)}"
        )
    else:
        ratio = difflib.SequenceMatcher(None, base, ours, autojunk=False).ratio()
        ok = ratio >= plan.min_similarity
        verdict = f"similarity {ratio:.2f}, at least {plan.min_similarity:g}"
    return SmokeCase(label, ok, f"{verdict}; {sides}", 0.0, ours, baseline=base)


def _ratio_case(
    plan: BaselinePlan, what: str, mine: float, theirs: float, limit: float
) -> SmokeCase:
    ratio = mine / theirs if theirs > 0 else float("inf")
    ok = mine <= theirs * limit or mine - theirs <= plan.latency_slack
    message = (
        f"{mine:.3f}s against the baseline's {theirs:.3f}s: {ratio:.2f}x, at most {limit:g}x "
        f"(or within {plan.latency_slack:g}s of it)"
    )
    return SmokeCase(f"baseline: {what}", ok, message, mine)


def _split_at(a: str, b: str) -> int:
    """The first character (from 1) where ``a`` and ``b`` part."""
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index + 1
    return min(len(a), len(b)) + 1


def _median(values: tuple[float, ...]) -> float:
    return percentile(list(values), 50) if values else 0.0


def _quote(text: str, most: int = 60) -> str:
    return repr(text if len(text) <= most else text[: most - 1] + "…")


def _short(prompt: str) -> str:
    return prompt if len(prompt) <= 40 else prompt[:39] + "…"

"""One run of the gate from the command line's flags: the plan (flags over the config's
``smoke`` section over the ``service`` defaults), then the gate itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline_kit.ci.context import DEFAULT_DOTENV
from pipeline_kit.errors import InputError

if TYPE_CHECKING:
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.config.service import ServiceSpec
    from pipeline_kit.smoke.baseline import BaselinePlan
    from pipeline_kit.smoke.gate import Alive, LoadPlan, MetricsPlan, SmokePlan, SmokeVerdict


@dataclass(frozen=True)
class SmokeOptions:
    config_path: Path | None
    cwd: Path
    url: str | None = None
    protocol: str | None = None
    prompt: str | None = None
    model: str | None = None
    expect_contains: str | None = None
    expect_regex: str | None = None
    ready_path: str | None = None
    ready_timeout: float | None = None
    request_timeout: float | None = None
    stream: bool | None = None
    repeat: int | None = None
    max_latency: float | None = None
    p95: float | None = None
    max_tokens: int | None = None
    digest: str | None = None
    image: str | None = None  # the repository judged (with or without @digest): default `image`
    baseline: str | None = None  # tag or digest compared against: over smoke.baseline.reference
    record: bool | None = None  # attach a passing result to the digest: over smoke.baseline.record
    junit: Path | None = None
    summary: Path | None = None
    format: str = "text"
    dotenv: Path = DEFAULT_DOTENV
    environ: Mapping[str, str] = field(default_factory=dict)


def gate(options: SmokeOptions, log: TextIO, alive: Alive | None = None) -> SmokeVerdict:
    """Plan from flags and config, then run the gate. ``alive`` says why the server stopped
    (None while it runs), so a crashed server fails at once instead of using up the budget."""
    from pipeline_kit.config.loader import for_run, load_config
    from pipeline_kit.config.service import ServiceSpec
    from pipeline_kit.smoke.gate import run_gate

    config = for_run(load_config(options.config_path, options.cwd), options.environ, log)
    service = ServiceSpec.from_config(config)
    section = config.section("smoke")
    plan = smoke_plan(options, section, service)
    baseline = baseline_plan(options, section.get("baseline"))

    def say(message: str) -> None:
        log.write(f"pipeline-kit smoke: {message}\n")
        log.flush()

    verdict = run_gate(plan, say, alive)
    if baseline is not None:
        from pipeline_kit.smoke.stored import Judged, judge_and_record

        insecure = tuple(config.section("registry").get("insecure", ()))
        judged = Judged(_judged_image(options, config.image, plan.digest), options.environ,
                        insecure)  # fmt: skip
        judge_and_record(verdict, baseline, judged, say)
    return verdict


def _judged_image(options: SmokeOptions, image: str | None, digest: str | None) -> ImageRef | None:
    """The repository and digest the gate judged: ``--image`` (or the config's ``image``)
    with ``--digest``; None without a digest."""
    from pipeline_kit.adapters.registry.references import ImageRef

    named = options.image or image
    if not named:
        return None
    parsed = ImageRef.parse(named)
    digest = digest or parsed.digest
    if digest is None:
        return None
    if parsed.digest is not None and parsed.digest != digest:
        raise InputError(
            f"--image {named} and --digest {digest} name two images.",
            hint="Give one of them, or the same digest in both.",
        )
    return ImageRef(parsed.registry, parsed.repository, None, digest)


def baseline_plan(options: SmokeOptions, section: Mapping[str, Any] | None) -> BaselinePlan | None:
    """``smoke.baseline`` under ``--baseline``/``--record``; None when neither asks for one."""
    from pipeline_kit.smoke.baseline import BaselinePlan

    if section is None and options.baseline is None and not options.record:
        return None  # `baseline: {}` asks for one, with the defaults
    section = section or {}

    def number(key: str) -> float | None:
        return float(section[key]) if key in section else None

    return BaselinePlan(
        reference=options.baseline or str(section.get("reference", "stable")),
        record=options.record if options.record is not None else bool(section.get("record", True)),
        record_untrusted=bool(options.record),
        required=bool(section.get("required", False)),
        output=str(section.get("output", "exact")),
        prefix=int(section.get("prefix", 32)),
        min_similarity=float(section.get("min_similarity", 0.9)),
        max_latency_ratio=number("max_latency_ratio"),
        max_ttft_ratio=number("max_ttft_ratio"),
        min_throughput_ratio=number("min_throughput_ratio"),
        latency_slack=float(section.get("latency_slack", 0.05)),
    )


def smoke_plan(
    options: SmokeOptions, section: Mapping[str, Any], service: ServiceSpec
) -> SmokePlan:
    """Flags over the config's ``smoke`` section over the ``service`` defaults."""
    from pipeline_kit.config.durations import parse_duration
    from pipeline_kit.smoke import PROTOCOLS
    from pipeline_kit.smoke.gate import SmokePlan, SmokeRequest
    from pipeline_kit.smoke.protocols import HttpProtocol

    url = options.url or section.get("url")
    if not url:
        raise InputError(
            "smoke: no server URL.", hint="Give --url http://HOST:PORT (or smoke.url)."
        )
    name = options.protocol or section.get("protocol", "openai-chat")
    protocol = PROTOCOLS.get(name, given_as="--protocol" if options.protocol else "smoke.protocol")
    if name == "http":
        http = section.get("http") or {}
        protocol = HttpProtocol(
            method=str(http.get("method", "POST")),
            route=str(http.get("path", "/")),
            body_template=str(http.get("body", '{"prompt": {prompt}}')),
            output_path=str(http.get("output", "$")),
        )
    # --max-tokens and --max-latency, like every flag, win over the config: the section's
    # default and each request's own value.
    max_tokens = options.max_tokens or int(section.get("max_tokens", 32))
    if options.prompt is not None:
        requests = [
            SmokeRequest(
                prompt=options.prompt,
                expect_contains=options.expect_contains,
                expect_regex=options.expect_regex,
                max_tokens=max_tokens,
                max_latency=options.max_latency,
            )
        ]
    else:
        requests = [
            SmokeRequest(
                prompt=str(item["prompt"]),
                name=str(item.get("name", "")),
                expect_contains=item.get("contains"),
                expect_regex=item.get("regex"),
                min_tokens=int(item.get("min_tokens", 1)),
                max_tokens=options.max_tokens or int(item.get("max_tokens", max_tokens)),
                max_latency=(
                    options.max_latency
                    if options.max_latency is not None
                    else item.get("max_latency")
                ),
                max_ttft=item.get("max_ttft"),
            )
            for item in section.get("requests", [])
        ]
    if not requests:
        raise InputError("smoke: nothing to ask.", hint="Give --prompt TEXT (or smoke.requests).")
    ready_timeout = options.ready_timeout
    if ready_timeout is None:
        ready_timeout = float(
            parse_duration(str(section["ready_timeout"]), what="smoke.ready_timeout")
            if "ready_timeout" in section
            else service.max_load_seconds
        )
    return SmokePlan(
        load=_load_plan(section.get("load")),
        metrics=_metrics_plan(section.get("metrics")),
        url=str(url),
        protocol=protocol,
        model=options.model or str(section.get("model") or service.model or "model"),
        requests=tuple(requests),
        ready_path=options.ready_path or str(section.get("ready_path", service.ready_path)),
        ready_timeout=ready_timeout,
        request_timeout=options.request_timeout or float(section.get("request_timeout", 60)),
        repeat=options.repeat or int(section.get("repeat", 1)),
        p95=options.p95 if options.p95 is not None else section.get("p95"),
        stream=options.stream if options.stream is not None else bool(section.get("stream", False)),
        digest=options.digest or options.environ.get("PIPELINE_KIT_DIGEST"),
    )


def _load_plan(section: Mapping[str, Any] | None) -> LoadPlan | None:
    """``smoke.load`` (the schema has checked its shape), or None when it is not set."""
    from pipeline_kit.config.durations import parse_duration
    from pipeline_kit.smoke.gate import LoadPlan

    if not section:
        return None

    def number(key: str) -> float | None:
        return float(section[key]) if key in section else None

    return LoadPlan(
        concurrency=int(section["concurrency"]),
        requests=int(section["requests"]),
        duration=float(
            parse_duration(str(section.get("duration", "5m")), what="smoke.load.duration")
        ),
        max_error_rate=float(section.get("max_error_rate", 0)),
        min_tokens_per_second=number("min_tokens_per_second"),
        p95=number("p95"),
        max_ttft_p95=number("max_ttft_p95"),
    )


def _metrics_plan(section: Mapping[str, Any] | None) -> MetricsPlan | None:
    """``smoke.metrics``, or None when it is not set."""
    from pipeline_kit.smoke.gate import MetricsPlan

    if section is None:  # `metrics: {}` asks for them, with the defaults
        return None
    limits = tuple((str(name), float(most)) for name, most in (section.get("max") or {}).items())
    return MetricsPlan(path=str(section.get("path", "/metrics")), max=limits)

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
    from pipeline_kit.config.service import ServiceSpec
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
    plan = smoke_plan(options, config.section("smoke"), service)

    def say(message: str) -> None:
        log.write(f"pipeline-kit smoke: {message}\n")
        log.flush()

    return run_gate(plan, say, alive)


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

    if not section:
        return None
    limits = tuple((str(name), float(most)) for name, most in (section.get("max") or {}).items())
    return MetricsPlan(path=str(section.get("path", "/metrics")), max=limits)

"""The model server's own Prometheus metrics, read before and after the gate's requests.

vLLM, SGLang, TGI and the bundled example server name the same things differently; ``FIGURES``
maps what a person looks at (requests served, tokens generated and read, requests running and
waiting, KV-cache use) to each server's names. Counters are reported as what the gate's
requests added, gauges as their value at the end. Limits (``smoke.metrics.max``) name any
metric of the exposition, the same way: a counter's increase or a gauge's last value, summed
over its label sets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# (figure, whether it is a counter, the names servers give it, first found wins)
FIGURES: tuple[tuple[str, bool, tuple[str, ...]], ...] = (
    ("requests", True,
     ("vllm:request_success_total", "sglang:num_requests_total", "tgi_request_success",
      "llm_service_requests_total")),
    ("generated tokens", True,
     ("vllm:generation_tokens_total", "sglang:generation_tokens_total",
      "tgi_request_generated_tokens_sum", "llm_service_generated_tokens_total")),
    ("prompt tokens", True,
     ("vllm:prompt_tokens_total", "sglang:prompt_tokens_total", "tgi_request_input_length_sum",
      "llm_service_prompt_tokens_total")),
    ("running", False,
     ("vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size",
      "llm_service_requests_running")),
    ("waiting", False,
     ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size")),
    ("KV cache use", False,
     ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage")),
)  # fmt: skip

_SAMPLE = re.compile(
    r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\S+)?$"
)


class MetricsError(ValueError):
    """An exposition that cannot be read."""


@dataclass(frozen=True)
class Exposition:
    """A scrape: each metric's value summed over its label sets, and the declared types."""

    values: Mapping[str, float]
    types: Mapping[str, str] = field(default_factory=dict)

    def is_counter(self, name: str) -> bool:
        declared = self.types.get(name) or self.types.get(_family(name))
        if declared is not None:
            return declared in ("counter", "histogram", "summary")
        return name.endswith(("_total", "_sum", "_count"))


def _family(name: str) -> str:
    for suffix in ("_total", "_sum", "_count", "_bucket"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def parse(text: str) -> Exposition:
    """The Prometheus text format (0.0.4), as the servers write it."""
    values: dict[str, float] = {}
    types: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            words = line.split()
            if len(words) >= 4 and words[1] == "TYPE":
                types[words[2]] = words[3]
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise MetricsError(f"line {number} is not a sample: {line[:80]!r}")
        try:
            value = float(match["value"])
        except ValueError:
            raise MetricsError(f"line {number}: {match['value']!r} is not a number") from None
        if math.isnan(value):
            continue
        name = match["name"]
        values[name] = values.get(name, 0.0) + value
    return Exposition(values, types)


def figure(before: Exposition, after: Exposition, name: str) -> float | None:
    """A counter's increase between the scrapes, or a gauge's value in the second; None when
    the second scrape does not have it."""
    if name not in after.values:
        return None
    if after.is_counter(name):
        return after.values[name] - before.values.get(name, 0.0)
    return after.values[name]


def _found(before: Exposition, after: Exposition) -> list[tuple[str, bool, str, float]]:
    """Each figure of ``FIGURES`` the server has: label, counter, its name, the value."""
    found = []
    for label, counter, names in FIGURES:
        for name in names:
            value = figure(before, after, name)
            if value is not None:
                found.append((label, counter, name, value))
                break
    return found


def summary(before: Exposition, after: Exposition) -> list[str]:
    """What a person looks at, in the server's own names: ``requests +12 (vllm:...)``."""
    return [
        f"{label} {f'+{value:g}' if counter else f'{value:g}'} ({name})"
        for label, counter, name, value in _found(before, after)
    ]


def figures(before: Exposition, after: Exposition) -> dict[str, float]:
    """The same figures by label (``requests``, ``generated tokens``...), for a baseline."""
    return {label: value for label, _, _, value in _found(before, after)}

"""The Prometheus exposition as the servers write it, and the figures the gate takes from it."""

from __future__ import annotations

import pytest

from pipeline_kit.smoke.metrics import MetricsError, figure, parse, summary

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_running{engine="1",model_name="m"} 1.0
# TYPE vllm:request_success_total counter
vllm:request_success_total{finished_reason="stop",model_name="m"} 10.0
vllm:request_success_total{finished_reason="length",model_name="m"} 5.0
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="m"} 1.5e+03
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="m"} 0.25
vllm:iteration_tokens_total_bucket{le="+Inf",model_name="m"} 3.0
vllm:num_preemptions_total{model_name="m"} NaN
"""


def test_samples_are_summed_over_their_label_sets() -> None:
    scrape = parse(VLLM)
    assert scrape.values["vllm:num_requests_running"] == 3.0
    assert scrape.values["vllm:request_success_total"] == 15.0
    assert scrape.values["vllm:generation_tokens_total"] == 1500.0
    assert "vllm:num_preemptions_total" not in scrape.values  # NaN says nothing
    assert scrape.is_counter("vllm:request_success_total")
    assert not scrape.is_counter("vllm:kv_cache_usage_perc")


def test_counters_give_their_increase_and_gauges_their_last_value() -> None:
    before = parse(VLLM)
    after = parse(
        VLLM.replace("} 10.0", "} 16.0")
        .replace("1.5e+03", "1600")
        .replace("} 2.0", "} 0.0")
        .replace("} 0.25", "} 0.5")
    )
    assert figure(before, after, "vllm:request_success_total") == 6.0
    assert figure(before, after, "vllm:generation_tokens_total") == 100.0
    assert figure(before, after, "vllm:num_requests_running") == 1.0
    assert figure(before, after, "vllm:nothing") is None
    assert summary(before, after) == [
        "requests +6 (vllm:request_success_total)",
        "generated tokens +100 (vllm:generation_tokens_total)",
        "running 1 (vllm:num_requests_running)",
        "KV cache use 0.5 (vllm:kv_cache_usage_perc)",
    ]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("sglang:num_queue_reqs 4\nsglang:token_usage 0.3\nsglang:generation_tokens_total 9\n",
         ["generated tokens +9 (sglang:generation_tokens_total)",
          "waiting 4 (sglang:num_queue_reqs)", "KV cache use 0.3 (sglang:token_usage)"]),
        ("# TYPE tgi_queue_size gauge\ntgi_queue_size 2\n# TYPE tgi_request_success counter\n"
         "tgi_request_success 7\n",
         ["requests +7 (tgi_request_success)", "waiting 2 (tgi_queue_size)"]),
        ("process_cpu_seconds_total 1\n", []),
    ],
    ids=["sglang", "tgi", "none of them"],
)  # fmt: skip
def test_each_server_in_its_own_names(text: str, names: list[str]) -> None:
    assert summary(parse(""), parse(text)) == names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html>not found</html>\n", "line 1 is not a sample"),
        ("up one\n", "line 1: 'one' is not a number"),
    ],
)
def test_what_is_not_an_exposition_is_named(text: str, message: str) -> None:
    with pytest.raises(MetricsError, match=message):
        parse(text)

"""Live-measurement helpers without a server: config edits, Prometheus parsing,
perf_analyzer export parsing, input data, record conversion."""

from __future__ import annotations

import pytest
from dynabatch.bench.workload import WorkItem, Workload
from dynabatch.live.pbtxt import get_model_name, get_parameters, set_model_name, set_parameters
from dynabatch.live.replay import LiveRecord, ModelInputs, prompt_ids
from dynabatch.live.scrape import parse_prometheus, series
from dynabatch.live.sweep import input_data, merge, profile_stats

CONFIG = """name: "tensorrt_llm"
backend: "python"
parameters {
  key: "engine"
  value: { string_value: "simulated" }
}
parameters: { key: "batch_policy" value { string_value: "adaptive" } }
"""


def test_pbtxt_parameters_are_replaced_and_appended():
    text = set_parameters(CONFIG, {"batch_policy": "static", "sim_time_scale": "0.25"})
    assert get_parameters(text) == {
        "engine": "simulated",
        "batch_policy": "static",
        "sim_time_scale": "0.25",
    }
    assert get_model_name(set_model_name(text, "other")) == "other"
    assert text.count("batch_policy") == 1  # replaced in place, not duplicated


def test_parse_prometheus_keeps_batcher_families_with_labels():
    text = (
        "# HELP x\n"
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="m",version="1"} 12\n'
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="m",version="1"} 48\n'
        'dynabatch_batch_limit{model="m",version="1"} 7\n'
        "nv_cpu_utilization 0.5\n"
    )
    samples = parse_prometheus(text, t=1.5)
    assert {s.name for s in samples} == {
        "nv_trt_llm_kv_cache_block_metrics",
        "dynabatch_batch_limit",
    }
    assert series(samples, "nv_trt_llm_kv_cache_block_metrics", kv_cache_block_type="max") == [
        (1.5, 48.0)
    ]
    assert series(samples, "dynabatch_batch_limit", model="m") == [(1.5, 7.0)]


def test_profile_stats_counts_tokens_per_response_and_times():
    ms = 1_000_000  # profile export times are in ns
    export = {
        "experiments": [
            {
                "experiment": {"mode": "concurrency", "value": 2},
                "requests": [
                    # 3 responses, the second carries 2 tokens (a coalesced response): 4 tokens
                    {
                        "timestamp": 0,
                        "response_timestamps": [10 * ms, 20 * ms, 40 * ms],
                        "response_outputs": [
                            {"output_ids": 1},
                            {"output_ids": [2, 3]},
                            {"output_ids": 4},
                        ],
                    },
                    # an empty final response must not count as a token or move the finish time
                    {
                        "timestamp": 10 * ms,
                        "response_timestamps": [30 * ms, 50 * ms, 90 * ms],
                        "response_outputs": [{"output_ids": [5]}, {"output_ids": [6]}, {}],
                    },
                ],
            }
        ]
    }
    (row,) = profile_stats(export)
    assert row["requests"] == 2
    assert row["output_tok_s"] == pytest.approx(6 / 0.050)  # 6 tokens from t=0 to t=50 ms
    assert row["ttft_p50_ms"] == pytest.approx(15.0)  # 10 and 20 ms
    # TPOT: (40-10)/3 = 10 ms and (50-30)/1 = 20 ms
    assert row["tpot_p50_ms"] == pytest.approx(15.0)
    pts = merge(
        [
            {
                "Concurrency": "2",
                "Inferences/Second": "3.5",
                "Response Throughput": "9",
                "p50 latency": "2000",
                "p99 latency": "4000",
            }
        ],
        [row],
        "concurrency",
    )
    assert pts[0].throughput_rps == 3.5 and pts[0].pa_p99_latency_ms == 4.0 and pts[0].requests == 2


def test_input_data_caps_output_len_and_follows_declared_inputs():
    wl = Workload("w", (WorkItem(0.0, 5, 3000), WorkItem(1.0, 2, 7)), max_new_tokens=100)
    data = input_data(wl, ["input_ids", "request_output_len", "input_lengths", "streaming"])["data"]
    assert [d["request_output_len"] for d in data] == [[100], [7]]
    assert data[0]["input_ids"]["shape"] == [5] and len(data[0]["input_ids"]["content"]) == 5
    assert data[1]["input_lengths"] == [2] and data[1]["streaming"] == [True]
    assert "streaming" not in input_data(wl, ["input_ids"])["data"][0]
    assert prompt_ids(3, 4).tolist() != prompt_ids(4, 4).tolist()


def test_live_record_goes_to_engine_clock():
    rec = LiveRecord(
        1,
        arrival_time=1.0,
        prompt_len=4,
        max_new_tokens=8,
        true_output_len=5,
        first_token_time=1.5,
        finish_time=2.5,
        output_tokens=5,
    )
    r = rec.to_record(time_scale=0.5)  # engine ran 2x faster than real: double every time
    assert (r.arrival, r.first_token, r.finish) == (2.0, 3.0, 5.0)
    assert r.completed and not r.rejected and r.tpot == pytest.approx(0.5)
    failed = LiveRecord(2, 0.0, 4, 8, 5, error="queue full").to_record()
    assert failed.rejected and not failed.completed and failed.ttft is None


def test_model_inputs_reads_batch_dim():
    assert ModelInputs.from_config(
        {"max_batch_size": 64, "input": [{"name": "input_ids"}]}
    ).batch_dim
    assert not ModelInputs.from_config({"max_batch_size": 0}).batch_dim


def test_profile_stats_counts_only_tokens_inside_the_windows():
    ms = 1_000_000
    export = {
        "experiments": [
            {
                "experiment": {"mode": "request_rate", "value": 1},
                "window_boundaries": [0, 100 * ms],
                "requests": [
                    {
                        "timestamp": 0,
                        "response_timestamps": [50 * ms, 90 * ms, 150 * ms],
                        "response_outputs": [
                            {"output_ids": [1]},
                            {"output_ids": [2]},
                            {"output_ids": [3]},
                        ],
                    }
                ],
            }
        ]
    }
    (row,) = profile_stats(export)
    assert row["output_tok_s"] == pytest.approx(2 / 0.1)  # the token at 150 ms is outside
    assert row["tpot_p50_ms"] == pytest.approx(50.0)  # per-request TPOT uses all tokens

"""/metrics as TensorRT-LLM exports them and as the inference gateway reads them, from a
real tritonserver serving the default repository (what `scripts/serve` serves).

The Gateway API Inference Extension's endpoint picker (engine type
`triton-tensorrt-llm`) takes the first series of a family whose labels equal its
selector: under load each selector must match exactly one series, and `fraction`
(used / max KV blocks) must stay in [0, 1]."""

from __future__ import annotations

import queue
import re
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from dynabatch.live.server import TritonServer
from triton_server import MODEL_REPOSITORY
from tritonclient.utils import np_to_triton_dtype

pytestmark = pytest.mark.server

GATEWAY_SELECTORS = [
    ("nv_trt_llm_request_metrics", {"request_type": "waiting"}),
    ("nv_trt_llm_request_metrics", {"request_type": "scheduled"}),
    ("nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "fraction"}),
    ("nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "tokens_per"}),
    ("nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "max"}),
]
# every family and label value of TensorRT-LLM's Triton backend
TRTLLM_SERIES = {
    "nv_trt_llm_request_metrics": ("request_type", {"active", "max", "scheduled", "context", "waiting"}),
    "nv_trt_llm_runtime_memory_metrics": ("memory_type", {"cpu", "gpu", "pinned"}),
    "nv_trt_llm_kv_cache_block_metrics": (
        "kv_cache_block_type",
        {"max", "free", "used", "tokens_per", "reused", "fraction"},
    ),
    "nv_trt_llm_inflight_batcher_metrics": (
        "inflight_batcher_specific_metric",
        {"total_context_tokens", "generation_requests", "micro_batch_id", "paused_requests"},
    ),
    "nv_trt_llm_general_metrics": ("general_type", {"timestamp", "iteration_counter"}),
}  # fmt: skip


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text format: (name, labels, value) per sample line."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def matching(samples, family: str, selector: dict[str, str]) -> list[float]:
    """What the endpoint picker's label-equality match sees."""
    return [
        v
        for name, labels, v in samples
        if name == family and all(labels.get(k) == w for k, w in selector.items())
    ]


@pytest.fixture(scope="module")
def default_repo(tmp_path_factory):
    log = tmp_path_factory.mktemp("gateway") / "tritonserver.log"
    # every model of the shipped default repository, with its shipped parameters
    with TritonServer(MODEL_REPOSITORY, log_path=log) as server:
        yield server


def scrape(server) -> list:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as r:
        return parse(r.read().decode())


def _start_load(server, n: int, prompt_len: int, out_len: int):
    responses: queue.Queue = queue.Queue()
    c = grpcclient.InferenceServerClient(server.grpc_url)
    c.start_stream(callback=lambda result, error: responses.put((result, error)))
    for i in range(n):
        tensors = {
            "input_ids": np.arange(1, prompt_len + 1, dtype=np.int32).reshape(1, -1),
            "input_lengths": np.array([[prompt_len]], np.int32),
            "request_output_len": np.array([[out_len]], np.int32),
            "streaming": np.array([[True]]),
        }
        inputs = []
        for name, a in tensors.items():
            t = grpcclient.InferInput(name, list(a.shape), np_to_triton_dtype(a.dtype))
            t.set_data_from_numpy(a)
            inputs.append(t)
        c.async_stream_infer(
            "tensorrt_llm", inputs, request_id=f"g{i}", enable_empty_final_response=True
        )
    return c, responses


def _finals(responses: queue.Queue) -> int:
    done = 0
    while True:
        try:
            result, error = responses.get_nowait()
        except queue.Empty:
            return done
        assert error is None, error
        final = result.get_response().parameters.get("triton_final_response")
        done += int(final is not None and final.bool_param)


def test_every_gateway_selector_matches_one_series_under_load(default_repo):
    n = 40  # 40 x (600 + 120) tokens > the 16,192-token KV cache of the default profile
    client, responses = _start_load(default_repo, n, prompt_len=600, out_len=120)
    finished, seen_busy, scrapes = 0, set(), 0
    try:
        while finished < n:
            samples = scrape(default_repo)
            scrapes += 1
            for family, selector in GATEWAY_SELECTORS:
                values = matching(samples, family, selector)
                assert len(values) == 1, (family, selector, values)
            (fraction,) = matching(samples, *GATEWAY_SELECTORS[2])
            assert 0.0 <= fraction <= 1.0
            for i, (family, selector) in enumerate(GATEWAY_SELECTORS[:3]):
                if matching(samples, family, selector)[0] > 0:
                    seen_busy.add(i)
            finished += _finals(responses)
            if finished < n:  # the next scrape waits for a response, not a timer
                result, error = responses.get(timeout=60)
                responses.put((result, error))
    finally:
        client.stop_stream()
        client.close()
    # the load showed up: requests waited, were scheduled, and used KV blocks
    assert seen_busy == {0, 1, 2}, (seen_busy, scrapes)


def test_every_trtllm_family_and_label_with_its_units(default_repo):
    samples = scrape(default_repo)
    for family, (key, values) in TRTLLM_SERIES.items():
        got = {labels[key] for name, labels, _ in samples if name == family}
        assert got == values, family
    (stamp,) = matching(samples, "nv_trt_llm_general_metrics", {"general_type": "timestamp"})
    assert abs(stamp - time.time() * 1e6) < 60e6  # microseconds since the epoch (not s)
    (cpu,) = matching(samples, "nv_trt_llm_runtime_memory_metrics", {"memory_type": "cpu"})
    assert cpu > 10e6  # bytes: a Python process with numpy holds tens of MB
    (tokens_per,) = matching(
        samples, "nv_trt_llm_kv_cache_block_metrics", {"kv_cache_block_type": "tokens_per"}
    )
    assert tokens_per == 64


def test_token_length_histograms_count_completed_requests(default_repo):
    def count(family):
        values = matching(
            scrape(default_repo),
            family + "_count",
            {"model": "tensorrt_llm"},
        )
        return values[0] if values else 0.0

    before_in, before_out = count("nv_llm_input_token_len"), count("nv_llm_output_token_len")
    client, responses = _start_load(default_repo, 2, prompt_len=30, out_len=7)
    try:
        got = 0
        while got < 2:
            result, error = responses.get(timeout=60)
            responses.put((result, error))
            got += _finals(responses)
    finally:
        client.stop_stream()
        client.close()
    assert count("nv_llm_input_token_len") == before_in + 2
    assert count("nv_llm_output_token_len") == before_out + 2
    samples = scrape(default_repo)
    (total_out,) = matching(
        samples, "nv_llm_output_token_len_sum", {"response_metric_type": "total_output_tokens"}
    )
    assert total_out >= 14

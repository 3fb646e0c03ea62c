"""Streaming, non-streaming, HTTP generate endpoints, cancellation and `stop`,
against a real tritonserver through real tritonclient clients."""

import json
import urllib.request

import numpy as np
import pytest
from triton_server import Stream, wait_for

pytestmark = pytest.mark.server

# 13B/A100 roofline at 5x speed: ~4 ms per decode step, fast tests, real timing.
FAST = dict(
    sim_profile="llama-2-13b-a100-40gb",
    sim_time_scale=0.2,
    batch_policy="adaptive",
    max_batch_size=16,
    metrics_interval_ms=50,
    cancellation_check_period_ms=20,
)


@pytest.fixture(scope="module")
def server(triton):
    triton.load("tensorrt_llm", **FAST)
    return triton


def test_grpc_streaming_returns_exactly_request_output_len_tokens(server):
    s = Stream(server.grpc_url)
    try:
        s.send("a", [1, 2, 3, 4], 12, streaming=True)
        s.send("b", [5, 6], 7, streaming=True, parameters={"request_priority": 1})
        s.wait(lambda: {"a", "b"} <= s.finished)
    finally:
        s.close()
    assert not s.errors
    assert len(s.tokens["a"]) == 12 and len(s.tokens["b"]) == 7
    # one response per engine event (at most one token per decode step here), then one
    # final response: never more responses than tokens + 1
    assert 2 <= s.count["a"] <= 13
    assert all(0 <= t < 32000 for t in s.tokens["a"])


def test_non_streaming_sends_one_response_with_all_tokens(server):
    s = Stream(server.grpc_url)
    results = []
    s.client.stop_stream()
    s.client.start_stream(callback=lambda result, error: results.append((result, error)))
    try:
        s.send("n", [7, 8, 9], 9, streaming=False)
        wait_for(lambda: results, timeout=20)
    finally:
        s.close()
    result, error = results[0]
    assert error is None
    ids, seq_len = result.as_numpy("output_ids"), result.as_numpy("sequence_length")
    # the prompt, then 9 tokens (exclude_input_in_output false, TensorRT-LLM's default)
    assert ids.shape == (1, 1, 3 + 9) and ids.dtype == np.int32
    assert ids[0, 0, :3].tolist() == [7, 8, 9] and seq_len.tolist() == [[3 + 9]]
    assert result.get_response().parameters["triton_final_response"].bool_param
    assert len(results) == 1  # nothing after the final response


def test_http_generate_stream_and_generate_with_json(server):
    body = json.dumps({"input_ids": [1, 2, 3], "request_output_len": 5, "streaming": True}).encode()
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/tensorrt_llm/generate_stream", data=body, method="POST"
    )
    with urllib.request.urlopen(req, timeout=20) as r:
        text = r.read().decode()
    events = [
        json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")
    ]
    tokens = []
    for e in events:
        tokens += e["output_ids"] if isinstance(e["output_ids"], list) else [e["output_ids"]]
    assert len(tokens) == 5, text
    body = json.dumps({"input_ids": [1, 2, 3], "request_output_len": 4}).encode()
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/tensorrt_llm/generate", data=body, method="POST"
    )
    with urllib.request.urlopen(req, timeout=20) as r:
        out = json.loads(r.read())
    assert len(out["output_ids"]) == 3 + 4 and out["sequence_length"] == 3 + 4  # prompt too


def kv_used(server):
    return kv_used_in(server, None)


def kv_used_in(server, text):
    return server.metric("nv_trt_llm_kv_cache_block_metrics", text=text, kv_cache_block_type="used")


def test_client_cancel_mid_stream_frees_slot_and_kv(server):
    s = Stream(server.grpc_url)
    s.send("long", list(range(1, 200)), 3000, streaming=True)
    s.wait(lambda: len(s.tokens.get("long", [])) >= 5, timeout=20)
    # 199-token prompt + >= 5 tokens: at least 4 blocks of 64 tokens held
    assert wait_for(lambda: (kv_used(server) or 0) >= 4, timeout=5)
    s.close(cancel=True)  # tritonclient: stop_stream(cancel_requests=True)
    # the model sees is_cancelled(), cancels in the engine; idle again, nothing held
    wait_for(
        lambda: (server.metric("dynabatch_requests_total", outcome="cancelled") or 0) >= 1,
        timeout=10,
    )
    wait_for(
        lambda: (
            kv_used(server) == 0
            and server.metric("nv_trt_llm_request_metrics", request_type="active") == 0
        ),
        timeout=10,
    )
    # a live engine iteration proves the blocks were really freed: the probe (1-token
    # prompt) holds ceil((1 + generated) / 64) blocks; a leak would add the >= 4 blocks
    # the cancelled request held
    before = server.metric("nv_trt_llm_general_metrics", general_type="iteration_counter")
    probe = Stream(server.grpc_url)
    try:
        probe.send("probe", [1], 3000, streaming=True)

        def live_used():  # from an iteration that ran after the cancel, in one scrape
            text = server.metrics()
            it = server.metric(
                "nv_trt_llm_general_metrics", text=text, general_type="iteration_counter"
            )
            active = server.metric("nv_trt_llm_request_metrics", text=text, request_type="active")
            if it > before + 1 and active == 1:
                return kv_used_in(server, text)
            return None

        used = wait_for(live_used, timeout=30, interval=0.02)  # bound, not a speed claim
        while probe.pump(0.05):  # tokens generated by now bound those at the scrape
            pass
        generated = len(probe.tokens.get("probe", []))
        assert 1 <= used <= -(-(1 + generated + 16) // 64), (used, generated)
    finally:
        probe.close(cancel=True)
    wait_for(lambda: kv_used(server) == 0, timeout=10)
    assert server.is_ready()


def test_stop_input_ends_a_running_request(server):
    s = Stream(server.grpc_url)
    try:
        s.send("victim", [1, 2, 3], 3000, streaming=True)
        s.wait(lambda: len(s.tokens.get("victim", [])) >= 3, timeout=20)
        s.send("victim", [1], 1, stop=np.array([[True]]))
        # two final responses with this id: the stop request's and the victim's own
        s.wait(lambda: s.finals.get("victim", 0) == 2, timeout=10)
        n = len(s.tokens["victim"])
        while s.pump(0.3):  # nothing more arrives for it
            pass
    finally:
        s.close()
    assert not s.errors
    assert 3 <= len(s.tokens["victim"]) == n < 3000 and s.finals["victim"] == 2
    wait_for(lambda: kv_used(server) == 0, timeout=10)

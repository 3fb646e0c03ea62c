"""Load above capacity: the controller's limit moves on /metrics, queue overflow and
queue timeout give clear rejections, and every accepted request completes."""

import time

import pytest
from triton_server import Stream, wait_for

pytestmark = pytest.mark.server

N, PROMPT, OUT = 60, 64, 128
# 64 KV blocks of 64 tokens; each request ends at 192 tokens (3 blocks), so 32 in
# flight would need 96 blocks: the memory bound must pull the limit below 32.
OVERLOAD = dict(
    sim_profile="llama-2-13b-a100-40gb",
    sim_time_scale=0.2,
    batch_policy="adaptive",
    max_batch_size=32,
    max_tokens_in_paged_kv_cache=4096,
    max_queue_size=12,
    metrics_interval_ms=20,
    stabilization_s=0.2,
)


def test_overload_limit_moves_queue_overflow_rejects_accepted_complete(triton):
    triton.load("tensorrt_llm", **OVERLOAD)
    s = Stream(triton.grpc_url)
    limits = []
    try:
        for i in range(N):
            s.send(f"r{i}", [1 + (i + j) % 500 for j in range(PROMPT)], OUT)
            if i >= 30:
                time.sleep(0.02)
            while s.pump(0.0):
                pass
            if i % 5 == 0:
                limits.append(triton.metric("dynabatch_batch_limit"))
        deadline = time.monotonic() + 60
        while len(s.finished) + len(s.errors) < N and time.monotonic() < deadline:
            s.pump(0.05)
            limits.append(triton.metric("dynabatch_batch_limit"))
    finally:
        s.close()
    assert len(s.finished) + len(s.errors) == N, (len(s.finished), s.errors[:3])
    assert s.errors, "load above capacity should overflow a 12-deep queue"
    assert all("queue full" in e and "max_queue_size=12" in e for e in s.errors), s.errors[:3]
    assert all(len(s.tokens[r]) == OUT for r in s.finished), "an accepted request came back short"
    seen = {v for v in limits if v is not None}
    print("batch limits seen on /metrics:", sorted(seen), "rejected:", len(s.errors))
    assert len(seen) >= 2, f"batch limit never moved: {sorted(seen)}"
    assert max(seen) <= 32
    rejected = wait_for(lambda: triton.metric("dynabatch_rejected_total"), timeout=5)
    assert rejected >= len(s.errors)
    completed = triton.metric("dynabatch_requests_total", outcome="completed")
    assert completed >= len(s.finished)
    assert triton.metric("dynabatch_tpot_ms") > 0
    assert triton.metric("dynabatch_batch_bound", component="memory") is not None
    # gauges refresh every metrics_interval_ms; right after a reload the previous
    # instance of the model may still write the same series until it is finalized
    assert wait_for(
        lambda: triton.metric("nv_trt_llm_kv_cache_block_metrics", kv_cache_block_type="max") == 64,
        timeout=10,
    )
    assert triton.is_ready()


def test_queue_timeout_fails_waiting_requests_with_clear_error(triton):
    # the static baseline model, one request at a time: the others wait and time out
    triton.load(
        "tensorrt_llm_static", static_batch_size=1, queue_timeout_ms=300, sim_time_scale=0.2
    )
    s = Stream(triton.grpc_url, model="tensorrt_llm_static")
    try:
        s.send("first", [1, 2, 3], 400)
        s.wait(lambda: s.tokens.get("first"), timeout=10)
        s.send("second", [4, 5, 6], 8)
        s.wait(lambda: s.errors, timeout=10)
        s.wait(lambda: "first" in s.finished, timeout=30)
    finally:
        s.close()
    assert "waited longer than the queue timeout" in s.errors[0]
    assert len(s.tokens["first"]) == 400 and "second" not in s.tokens
    failed = triton.metric(
        "dynabatch_requests_total", model="tensorrt_llm_static", outcome="failed"
    )
    assert failed is not None and failed >= 1

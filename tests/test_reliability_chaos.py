"""Chaos run against a real tritonserver (slow; `make test` runs it): 5,000 seeded
requests, streaming and not, ~10 % cancelled by the client at random points, ~5 %
invalid, bursts that overflow the admission queue. Afterwards every request saw
exactly one final response or one error (or its own cancellation), no stream hung,
/metrics shows an idle engine and the model's counters reconcile. The counts are
printed and written to out/reliability_chaos.json (quoted in docs/RELIABILITY.md)."""

import json
import time

import pytest
from reliability import chaos
from triton_server import ROOT, wait_for

pytestmark = [pytest.mark.server, pytest.mark.slow]
MODEL = "tensorrt_llm"
N, SEED = 5000, 20240611
CONFIG = dict(
    sim_profile="llama-2-13b-a100-40gb",
    sim_time_scale=0.3,
    batch_policy="adaptive",
    max_batch_size=16,
    max_queue_size=40,
    queue_timeout_ms=0,
    metrics_interval_ms=50,
    vocab_size=32000,  # chaos sends out-of-vocabulary ids: a known vocabulary
)


def _server_counts(server):
    text = server.metrics()
    m = lambda fam, **kw: server.metric(fam, model=MODEL, text=text, **kw) or 0.0
    counts = {
        o: m("dynabatch_requests_total", outcome=o)
        for o in ("submitted", "accepted", "completed", "cancelled", "failed")
    }
    counts["rejected"] = m("dynabatch_rejected_total")
    counts["kv_used_blocks"] = m("nv_trt_llm_kv_cache_block_metrics", kv_cache_block_type="used")
    counts["active"] = m("nv_trt_llm_request_metrics", request_type="active")
    counts["queue"] = m("dynabatch_queue_length")
    return counts


def _settled(server):
    first = _server_counts(server)
    time.sleep(0.3)
    return first if _server_counts(server) == first else None


def test_chaos_run_nothing_lost(triton):
    triton.load(MODEL, **CONFIG)
    before = wait_for(lambda: _settled(triton), timeout=10)
    res = chaos.run(triton.grpc_url, MODEL, N, SEED)
    after = wait_for(lambda: _settled(triton), timeout=30)
    server = {
        k: after[k] - before[k]
        for k in ("submitted", "accepted", "completed", "cancelled", "failed", "rejected")
    }
    server.update(
        kv_used_blocks=after["kv_used_blocks"], active=after["active"], queue=after["queue"]
    )
    report = dict(client=res.as_dict(), server=server, config=CONFIG, model=MODEL)
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "reliability_chaos.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\nchaos run:", json.dumps(report, indent=2))

    # the client side: nothing lost, nothing hung, no wrong answer
    assert res.lost == 0 and res.streams_hung == 0, report
    assert not res.unexpected, res.unexpected[:5]
    classified = (
        res.completed + res.invalid_rejected + res.queue_full_rejected + res.cancelled_by_client
    )
    assert classified == N
    # the run did what it claims: cancels, invalid input, queue overflow all happened
    assert res.cancelled_by_client >= 0.05 * N and res.invalid_rejected >= 0.03 * N
    assert res.queue_full_rejected > 0 and res.completed >= 0.5 * N
    # the server side: idle, and the counters reconcile
    assert server["kv_used_blocks"] == 0 and server["active"] == 0 and server["queue"] == 0
    assert server["submitted"] == server["accepted"] + server["rejected"]
    assert server["accepted"] == server["completed"] + server["cancelled"] + server["failed"]
    assert server["failed"] == 0
    # ... and agree with the clients: a request the client cancelled before any answer
    # may have been cancelled, completed or rejected by the server, or (cancelled
    # before it was sent) never reached it; everything else is counted exactly once.
    assert server["completed"] >= res.completed
    assert server["rejected"] >= res.invalid_rejected + res.queue_full_rejected
    assert server["cancelled"] <= res.cancelled_by_client
    unreached = N - server["submitted"]
    assert 0 <= unreached <= res.cancelled_by_client
    assert triton.is_ready()

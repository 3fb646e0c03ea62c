"""Admission order and tenants through a real tritonserver: request priority changes
the order in which the engine serves queued requests (sent to `tensorrt_llm` directly,
or as text through the `ensemble` and the `tensorrt_llm_bls`), and a tenant over its
own queue limit gets its own clear error while the other tenants are served."""

import numpy as np
import pytest
from text_client import PROMPT, TextStream, text_inputs
from triton_server import Stream, wait_for

pytestmark = pytest.mark.server

# one request runs at a time, so the queued ones reach the engine in the gate's order
ONE_AT_A_TIME = dict(
    batch_policy="static",
    static_batch_size=1,
    sim_time_scale=0.2,
    metrics_interval_ms=20,
)


def hold_the_engine(triton, s: Stream, parameters: dict | None = None) -> None:
    """Start a long request and wait until it runs: later requests must queue."""
    s.send("blocker", [1, 2, 3], 4000, parameters=parameters)
    s.wait(lambda: s.tokens.get("blocker"), timeout=20)


def release_the_engine(triton, s: Stream, queued: int) -> None:
    """Once `queued` requests wait in the gate, stop the long request."""
    wait_for(lambda: triton.metric("dynabatch_queue_length") == queued, timeout=20)
    s.send("blocker", [1], 1, stop=np.array([[True]]))


def first_token_order(triton, queue_policy: str) -> list[str]:
    triton.load("tensorrt_llm", queue_policy=queue_policy, **ONE_AT_A_TIME)
    s = Stream(triton.grpc_url)
    try:
        hold_the_engine(triton, s)
        s.send("low1", [4, 5, 6], 4)
        s.send("low2", [7, 8, 9], 4, parameters={"request_priority": 0})
        s.send("high", [10, 11, 12], 4, parameters={"request_priority": 7})
        release_the_engine(triton, s, queued=3)
        s.wait(
            lambda: {"low1", "low2", "high"} <= s.finished and s.finals.get("blocker") == 2,
            timeout=60,
        )
    finally:
        s.close()
    assert not s.errors
    assert all(len(s.tokens[r]) == 4 for r in ("low1", "low2", "high"))
    return list(s.tokens)  # dict order = order of first tokens


def test_request_priority_changes_the_order_at_the_engine(triton):
    assert first_token_order(triton, "priority") == ["blocker", "high", "low1", "low2"]
    # the same requests under fcfs: arrival order (the priority is what moved `high`)
    assert first_token_order(triton, "fcfs") == ["blocker", "low1", "low2", "high"]


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_priority_on_a_text_request_changes_the_order_at_the_engine(triton, model):
    """TensorRT-LLM's own ensemble loses `priority` on the way to the engine
    (tensorrtllm_backend issue 422); ours carries it as a request parameter."""
    triton.load("tensorrt_llm", queue_policy="priority", **ONE_AT_A_TIME)
    for name in ("preprocessing", "postprocessing", model):
        triton.load(name)
    engine, text = Stream(triton.grpc_url), TextStream(triton.grpc_url)
    try:
        hold_the_engine(triton, engine)
        # one at a time into the gate, so the arrival order there is certain: the low
        # priority request arrives first and would be served first without priority
        for rid, priority, queued in (("low", 0, 1), ("high", 7, 2)):
            text.send(
                model,
                rid,
                parameters={"request_priority": priority},
                **text_inputs(PROMPT, 4, True, return_num_output_tokens=np.array([[True]])),
            )
            wait_for(lambda q=queued: triton.metric("dynabatch_queue_length") == q, timeout=20)
        release_the_engine(triton, engine, queued=2)
        text.wait({"low", "high"}, timeout=60)
        engine.wait(lambda: engine.finals.get("blocker") == 2, timeout=30)
    finally:
        text.close()
        engine.close()
    assert not text.errors and not engine.errors
    assert list(text.chunks) == ["high", "low"]  # dict order = order of first text
    assert all(text.outputs[r]["num_output_tokens"] == 4 for r in ("high", "low"))


def test_tenant_over_its_queue_limit_gets_its_own_error_others_served(triton):
    triton.load(
        "tensorrt_llm",
        queue_policy="fair",
        max_queue_size=50,
        tenant_max_queue_size="noisy:2",
        **ONE_AT_A_TIME,
    )
    s = Stream(triton.grpc_url)
    try:
        hold_the_engine(triton, s, {"tenant": "quiet"})
        for i in range(5):
            s.send(f"noisy{i}", [4, 5, 6], 4, parameters={"tenant": "noisy"})
        for i in range(3):
            s.send(f"quiet{i}", [7, 8, 9], 4, parameters={"tenant": "quiet"})
        release_the_engine(triton, s, queued=5)  # noisy's 2 within its limit, quiet's 3
        # the blocker gets two final responses: the stop request's and its own
        s.wait(
            lambda: len(s.finished) + len(s.errors) == 9 and s.finals.get("blocker") == 2,
            timeout=60,
        )
    finally:
        s.close()
    assert len(s.errors) == 3, s.errors
    for error in s.errors:
        assert "queue full for tenant 'noisy'" in error and "tenant_max_queue_size=2" in error
    quiet = {"blocker", "quiet0", "quiet1", "quiet2"}
    assert quiet <= s.finished and all(len(s.tokens[r]) == 4 for r in quiet - {"blocker"})
    assert len(s.finished - quiet) == 2  # the two noisy requests within its limit
    expected = {
        ("dynabatch_tenant_rejected_total", "noisy"): 3,
        ("dynabatch_tenant_admitted_total", "quiet"): 4,
        ("dynabatch_tenant_output_tokens_total", "quiet"): len(s.tokens["blocker"]) + 12,
        ("dynabatch_tenant_ttft_seconds_count", "noisy"): 2,
        ("dynabatch_tenant_queue_length", "noisy"): 0,
    }
    # the gauges refresh every metrics_interval_ms: wait for the refresh after the last token
    wait_for(
        lambda: all(
            triton.metric(family, tenant=tenant) == value
            for (family, tenant), value in expected.items()
        ),
        timeout=10,
    )
    assert triton.is_ready()


def test_tenant_limit_through_the_ensemble(triton):
    """The tenant travels through the ensemble like priority: its own limit refuses it
    with its own error, while another tenant's text request is still queued and served."""
    triton.load(
        "tensorrt_llm", queue_policy="fair", tenant_max_queue_size="noisy:1", **ONE_AT_A_TIME
    )
    for name in ("preprocessing", "postprocessing", "ensemble"):
        triton.load(name)
    engine, text = Stream(triton.grpc_url), TextStream(triton.grpc_url)
    inputs = text_inputs(PROMPT, 4, True)
    # the counter lives on across reloads of the model (earlier tests in the session)
    rejected_before = triton.metric("dynabatch_tenant_rejected_total", tenant="noisy") or 0
    try:
        hold_the_engine(triton, engine)
        text.send("ensemble", "noisy0", parameters={"tenant": "noisy"}, **inputs)
        wait_for(lambda: triton.metric("dynabatch_queue_length") == 1, timeout=20)
        text.send("ensemble", "noisy1", parameters={"tenant": "noisy"}, **inputs)
        text.wait({"noisy1"}, timeout=30)  # its error: the only request that can end now
        text.send("ensemble", "quiet0", parameters={"tenant": "quiet"}, **inputs)
        release_the_engine(triton, engine, queued=2)
        text.wait({"noisy0", "quiet0"}, timeout=60)
        engine.wait(lambda: engine.finals.get("blocker") == 2, timeout=30)
    finally:
        text.close()
        engine.close()
    assert list(text.errors) == ["noisy1"]
    error = text.errors["noisy1"]
    assert "queue full for tenant 'noisy'" in error and "tenant_max_queue_size=1" in error
    assert {"noisy0", "quiet0"} <= text.finished and text.text("quiet0")
    wait_for(
        lambda: (
            triton.metric("dynabatch_tenant_rejected_total", tenant="noisy") == rejected_before + 1
        ),
        timeout=10,
    )
    assert triton.is_ready("ensemble")


def test_bad_tenant_parameter_is_refused_naming_it(triton):
    triton.load("tensorrt_llm", **ONE_AT_A_TIME)
    s = Stream(triton.grpc_url)
    try:
        s.send("bad", [1, 2, 3], 4, parameters={"tenant": "x" * 65})
        s.send("ok", [1, 2, 3], 4, parameters={"tenant": "fine"})
        s.wait(lambda: s.errors and "ok" in s.finished, timeout=30)
    finally:
        s.close()
    assert "request parameter 'tenant'" in s.errors[0]
    assert len(s.tokens["ok"]) == 4

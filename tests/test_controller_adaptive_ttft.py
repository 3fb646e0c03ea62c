"""adaptive keeps TTFT in view: the queue head's wait relaxes the KV forecast's margin."""

import random

import pytest
from dynabatch.controller import make_controller
from dynabatch.engines.base import KvCapacity
from dynabatch.types import ControlInput, FinishReason, IterationStats, RequestState


def _stats(t, *, latency=30.0, gen=2, total=1000, free=500):
    return IterationStats(
        iter=0,
        timestamp=t,
        iter_latency_ms=latency,
        num_active_requests=gen,
        num_queued_requests=0,
        num_completed_requests=0,
        max_num_active_requests=256,
        max_num_blocks=total,
        free_num_blocks=free,
        used_num_blocks=total - free,
        tokens_per_block=16,
        num_scheduled_requests=gen,
        num_gen_requests=gen,
    )


def _finished(i, prompt, out):
    return RequestState(
        i,
        prompt,
        1024,
        0.0,
        0.0,
        generated=out,
        first_token_time=0.5,
        finish_time=1.0,
        finish_reason=FinishReason.EOS,
    )


def _forecast_limit(wait_s):
    """20 running requests early in long, uncertain outputs (50 or 1,000 tokens): the
    cache's forecast peak lies in the future, so the overflow margin decides."""
    ctl = make_controller(
        "adaptive",
        {"tpot_sla_ms": 1000, "ttft_sla_s": 2.0},
        max_batch_size=256,
        kv_capacity=KvCapacity(1000, 16),
    )
    rng = random.Random(1)
    for i in range(256):
        ctl.on_request_finish(_finished(i, 200, rng.choice([50, 1000])))
    running = {
        j: RequestState(j, 200, 1024, 0.0, 0.0, generated=10, first_token_time=0.1)
        for j in range(20)
    }
    head = [(200, 1024)] * 8
    return ctl.update(ControlInput(_stats(1.0), 8, wait_s, running, waiting_head=head))


def test_forecast_margin_shrinks_as_the_head_waits_and_returns_past_the_ttft():
    calm = _forecast_limit(0.0)
    assert calm < _forecast_limit(0.5) < _forecast_limit(1.0)  # margin 1 -> 0.5 -> 0
    assert _forecast_limit(1.9) == _forecast_limit(1.0)  # no margin up to the TTFT
    assert _forecast_limit(2.5) == calm  # the head's TTFT is lost: full margin again


@pytest.mark.parametrize("ttft_s,at_once", [(0.5, True), (2.0, False)])
def test_sla_bound_steps_aside_at_once_when_the_window_outlasts_the_ttft(ttft_s, at_once):
    # The SLA bound holds the batch near 50 (step latency 10 + n ms, 60 ms SLO). Once the
    # queue's oldest request has waited past the TTFT SLO the bound steps aside; with a
    # TTFT shorter than the 2 s stabilisation window the published limit rises in that
    # very update, with a TTFT at least as long it waits for the window as before.
    ctl = make_controller(
        "adaptive",
        {"tpot_sla_ms": 60.0, "ttft_sla_s": ttft_s, "stabilization_s": 2.0},
        max_batch_size=256,
        kv_capacity=KvCapacity(100_000, 16),
    )
    for i in range(64):
        ctl.on_request_finish(_finished(i, 100, 50))
    running = {
        j: RequestState(j, 100, 1024, 0.0, 0.0, generated=10, first_token_time=0.1)
        for j in range(40)
    }
    head = [(100, 64)] * 4
    t, k = 0.0, 0
    while t < 60.0:
        n = 40 + (k % 21) - 10
        s = _stats(t, latency=10.0 + n, gen=n, total=100_000, free=90_000)
        ctl.update(ControlInput(s, 4, 0.0, running, waiting_head=head))
        t += 0.05
        k += 1
    held = ctl.limit
    assert held < 80
    s = _stats(t, latency=50.0, gen=40, total=100_000, free=90_000)
    lifted = ctl.update(ControlInput(s, 4, ttft_s + 0.1, running, waiting_head=head))
    assert ctl.decision.reason == "ttft"
    assert (lifted > held + 20) if at_once else (lifted == held)

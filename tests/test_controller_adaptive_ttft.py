"""adaptive keeps TTFT in view: the queue head's wait relaxes the KV forecast's margin."""

import random

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

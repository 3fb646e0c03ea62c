"""adaptive's memory side on its own (controller/memory_bound.py): the eviction scales'
floor, the forecast's budget and cadence, the slot model's cold start and warm-up, and
how often the survival table is rebuilt."""

import pytest
from dynabatch.controller.length_model import LengthModel, slots_that_fit
from dynabatch.controller.memory_bound import MemoryBound
from dynabatch.types import ControlInput, KvCapacity, RequestState
from stats_builder import iteration_stats

TOKENS_PER_BLOCK = 16


def memory(**params) -> MemoryBound:
    values = dict(
        lower=4,
        kv_target_fraction=0.97,
        kv_overflow_prob=0.1,
        forecast_overflow_prob=0.2,
        pause_backoff=0.5,
        pause_recovery_s=10.0,
        kv_probe_max=1.0,
        ttft_sla_s=2.0,
        lengths=LengthModel(512),
    )
    values.update(params)
    return MemoryBound(**values)


def update(mem, t, blocks, running, head=(), paused=False):
    """One iteration of a pool of `blocks` x 16 tokens; the queue head has not waited."""
    stats = iteration_stats(
        t=t, total=blocks, tokens_per_block=TOKENS_PER_BLOCK, pauses=int(paused)
    )
    sample = ControlInput(stats, len(head), 0.0, running, waiting_head=list(head))
    return mem.update(sample, KvCapacity(blocks, TOKENS_PER_BLOCK), paused)


def running_requests(n, prompt=500, generated=50):
    return {j: RequestState(j, prompt, 1024, 0.0, 0.0, generated=generated) for j in range(n)}


def warm(mem, finished=64, prompt=200, output=100):
    for _ in range(finished):
        mem.on_finish(prompt, output)
    return mem


def test_eviction_scales_stop_at_the_floor():
    mem = memory(kv_probe_max=1.5)
    for _ in range(10):  # ten evictions in one instant: no time to recover in between
        update(mem, 0.0, 1000, running_requests(4), paused=True)
    assert (mem.scale, mem.forecast_scale) == (0.3, 0.3)


def test_forecast_budget_is_the_cache_times_its_eviction_scale():
    # after one eviction (back-off 0.5) the forecast fits what a cache half the size fits
    head = [(300, 1024)] * 40
    evicted, half = warm(memory()), warm(memory())
    update(evicted, 0.0, 1000, running_requests(6), head)
    before = evicted.b_forecast
    # the eviction comes one update later, inside the forecast's cadence (8 updates): it
    # recomputes at once rather than keep the bound that over-admitted
    update(evicted, 0.0, 1000, running_requests(6), head, paused=True)
    update(half, 0.0, 500, running_requests(6), head)
    assert evicted.forecast_scale == 0.5
    assert evicted.b_forecast == half.b_forecast < before


def test_forecast_is_kept_while_nobody_waits():
    mem = warm(memory())
    held = update(mem, 0.0, 1000, running_requests(6), [(300, 1024)] * 40)
    # two requests left, nothing waits: no admission to decide, the bound stands
    assert update(mem, 0.01, 1000, running_requests(4)) == held


def test_slot_model_cold_start_reserves_what_running_requests_may_reach():
    mem = memory()
    assert update(mem, 0.0, 1000, {}) == 4.0  # nothing running, nothing learned: the floor
    budget = 1000 * TOKENS_PER_BLOCK * 0.97
    # prompt 500 + 1024 max tokens each, whatever they will really generate
    assert update(mem, 0.01, 1000, running_requests(3)) == pytest.approx(budget / 1524)


def test_slot_model_is_trusted_from_the_eighth_finished_request():
    mem = warm(memory(), finished=7)
    budget = 1000 * TOKENS_PER_BLOCK * 0.97
    assert not mem.warm
    assert update(mem, 0.0, 1000, running_requests(3)) == pytest.approx(budget / 1524)
    mem.on_finish(200, 100)
    mean, std = mem.lengths.slot_moments()
    expected = slots_that_fit(mean + TOKENS_PER_BLOCK / 2, std, mem.z, budget)
    assert mem.warm and update(mem, 0.01, 1000, running_requests(3)) == expected


def test_survival_table_is_rebuilt_each_finish_up_to_64_then_every_16th():
    mem = memory()
    mem.on_finish(200, 100)
    assert mem.survival.top == 101  # the first finish is in the table at once
    warm(mem, finished=63)
    mem.on_finish(200, 500)  # the 65th: a longer output, not yet in the table
    for _ in range(14):
        mem.on_finish(200, 100)
    assert mem.survival.top == 101
    mem.on_finish(200, 100)  # the 16th finish since the last rebuild
    assert mem.survival.top == 501

"""Algorithms 1 and 2 pinned to their formulas (docs/CONTROLLER.md), and their minimum."""

import math

import pytest
from dynabatch.controller import make_controller
from dynabatch.controller.paper import PaperMemoryController, PaperSlaController
from dynabatch.engines.base import KvCapacity
from dynabatch.types import ControlInput, RequestState
from stats_builder import iteration_stats


def stats(*, used=0, total=1000, latency=50.0, gen=1, scheduled=None, t=0.0, **kw):
    return iteration_stats(
        t=t,
        total=total,
        used=used,
        latency=latency,
        gen=gen,
        num_active_requests=scheduled or gen,
        num_scheduled_requests=scheduled if scheduled is not None else gen,
        **kw,
    )


def running(n):
    return {i: RequestState(i, 100, 200, 0.0, 0.0) for i in range(n)}


def sample(st, *, waiting=0, n_running=0):
    return ControlInput(st, num_waiting=waiting, oldest_wait_s=0.0, running=running(n_running))


# ---- Algorithm 1 ------------------------------------------------------------------


def alg1(total, used, n, factor, lo, hi):
    b = math.floor(total * factor / (used / n))
    return min(max(max(b, n), lo), hi)


@pytest.mark.parametrize(
    "total,used,n,factor,lo,hi",
    [
        (1000, 400, 20, 0.95, 1, 256),  # 47
        (1000, 900, 30, 0.95, 1, 256),  # floor(950/30) = 31
        (1000, 990, 50, 0.90, 1, 256),  # floor(900/19.8) = 45 < running 50 -> 50
        (1000, 10, 10, 0.95, 1, 64),  # 950 -> upper 64
        (5000, 4000, 4, 0.95, 8, 64),  # 4 -> lower 8
    ],
)
def test_algorithm1_formula(total, used, n, factor, lo, hi):
    ctl = PaperMemoryController(memory_factor=factor, lower=lo, upper=hi)
    got = ctl.update(sample(stats(used=used, total=total), waiting=3, n_running=n))
    assert got == alg1(total, used, n, factor, lo, hi)
    assert ctl.decision.bounds == {"memory": float(got)}


def test_algorithm1_only_recomputes_when_waiting_and_running():
    ctl = PaperMemoryController(memory_factor=0.95, lower=1, upper=256)
    assert ctl.update(sample(stats(used=500), waiting=1, n_running=25)) == 47
    # requests running but none waiting: keep the previous b
    assert ctl.update(sample(stats(used=990), waiting=0, n_running=10)) == 47
    # requests waiting but none running: keep the previous b
    assert ctl.update(sample(stats(used=0), waiting=5, n_running=0)) == 47
    # both again: recomputed
    assert ctl.update(sample(stats(used=950), waiting=2, n_running=10)) == 10


def test_algorithm1_uses_engine_block_count():
    ctl = PaperMemoryController(memory_factor=1.0, lower=1, upper=512)
    # the engine reports 2000 blocks: its figure wins over the configured capacity
    assert ctl.update(sample(stats(used=200, total=2000), waiting=1, n_running=10)) == 100


# ---- Algorithm 2 ------------------------------------------------------------------


def make_sla(**kw):
    args = dict(d_sla_ms=50.0, eps_ms=5.0, alpha=4.0, delta=2.0, smoothing=1.0, lower=1, upper=100)
    args.update(kw)
    return PaperSlaController(**args)


def test_algorithm2_initial_window_is_bounds():
    ctl = make_sla()
    assert (ctl.b_low, ctl.b_high, ctl.limit) == (1, 100, 50)


def test_algorithm2_too_slow_branch():
    ctl = make_sla()
    ctl.b_low, ctl.b_high = 30.0, 60.0
    # tau = 70 > 55: b_high = max(b_bar, b_low + alpha) = max(40, 34); b_low = max(30 - 2, 1)
    got = ctl.update(sample(stats(latency=70.0, gen=40)))
    assert (ctl.b_high, ctl.b_low) == (40, 28)
    assert got == math.floor((28 + 40) / 2)
    # b_bar below b_low + alpha: b_high = b_low + alpha (with the old b_low)
    ctl.b_low, ctl.b_high = 30.0, 60.0
    ctl.update(sample(stats(latency=70.0, gen=10)))
    assert (ctl.b_high, ctl.b_low) == (34, 28)


def test_algorithm2_headroom_branch():
    ctl = make_sla()
    ctl.b_low, ctl.b_high = 30.0, 60.0
    # tau = 20 < 45: b_low = min(b_bar, b_high - alpha) = min(40, 56); b_high = min(62, 100)
    got = ctl.update(sample(stats(latency=20.0, gen=40)))
    assert (ctl.b_low, ctl.b_high) == (40, 62)
    assert got == 51
    ctl.b_low, ctl.b_high = 30.0, 99.0
    ctl.update(sample(stats(latency=20.0, gen=98)))
    assert (ctl.b_low, ctl.b_high) == (95, 100)  # b_high - alpha; capped at B_max


def test_algorithm2_in_band_branch():
    ctl = make_sla()
    got = ctl.update(sample(stats(latency=52.0, gen=40)))
    assert (ctl.b_low, ctl.b_high) == (38, 42)
    assert got == 40
    ctl.update(sample(stats(latency=50.0, gen=99)))
    assert (ctl.b_low, ctl.b_high) == (97, 100)


def test_algorithm2_moving_averages():
    ctl = make_sla(smoothing=0.5)
    ctl.update(sample(stats(latency=40.0, gen=10)))
    ctl.update(sample(stats(latency=80.0, gen=30)))
    assert ctl.tau.value == pytest.approx(60.0)  # 40 + 0.5 * (80 - 40)
    assert ctl.b_bar.value == pytest.approx(20.0)


def test_algorithm2_ignores_prefill_only_steps():
    ctl = make_sla()
    before = (ctl.b_low, ctl.b_high, ctl.limit)
    ctl.update(sample(stats(latency=500.0, gen=0, scheduled=4)))
    assert (ctl.b_low, ctl.b_high, ctl.limit) == before
    assert ctl.tau.value is None


# ---- paper = min of both ----------------------------------------------------------


def test_paper_is_min_of_both_and_names_binding_bound():
    ctl = make_controller(
        "paper",
        {"tpot_sla_ms": "50", "sla_smoothing": "1"},
        max_batch_size=100,
        kv_capacity=KvCapacity(1000, 16),
    )
    # memory: floor(950 / (900/30)) = 31; sla from [1,100]: tau 20 < 45 -> [min(30,96), 100] -> 65
    got = ctl.update(sample(stats(used=900, latency=20.0, gen=30), waiting=2, n_running=30))
    assert got == 31
    assert ctl.decision.bounds == {"memory": 31.0, "sla": 65.0}
    assert ctl.decision.reason == "memory"
    # SLA violated for a while: the SLA bound takes over
    for _ in range(40):
        got = ctl.update(sample(stats(used=100, latency=90.0, gen=got), waiting=2, n_running=30))
    assert ctl.decision.reason == "sla"
    assert got == ctl.decision.bounds["sla"] < 31

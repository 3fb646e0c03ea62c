"""adaptive's parts: length model, CLT solve, latency fit, eviction back-off, stabiliser."""

import math
import random
from statistics import NormalDist

import pytest
from dynabatch.controller import make_controller
from dynabatch.controller.common import SampleWindow, Stabilizer
from dynabatch.controller.latency_fit import StepLatencyFit
from dynabatch.controller.length_model import LengthModel, slots_that_fit
from dynabatch.engines.base import KvCapacity
from dynabatch.types import ControlInput, FinishReason, RequestState
from stats_builder import iteration_stats


def stats(t, *, used=0, total=1000, latency=30.0, gen=8, ctx=0, pauses=0):
    return iteration_stats(
        t=t, used=used, total=total, latency=latency, gen=gen, ctx=ctx, pauses=pauses
    )


def finished(i, prompt, out, t=1.0, reason=FinishReason.EOS):
    return RequestState(
        i,
        prompt,
        1024,
        0.0,
        0.0,
        generated=out,
        first_token_time=t - 0.5,
        finish_time=t,
        finish_reason=reason,
    )


def test_length_model_matches_a_brute_force_slot_simulation():
    rng = random.Random(3)
    reqs = [(rng.randint(10, 500), rng.randint(1, 300)) for _ in range(200)]
    model = LengthModel(window=1000)
    for p, n in reqs:
        model.add(p, n)
    mean, std = model.slot_moments()
    # a slot serving the requests back to back, sampled at every step
    samples = [p + a for p, n in reqs for a in range(n)]
    # ages are discrete (0..n-1) in the brute force, continuous in the model: allow a
    # half token of bias and a loose relative tolerance on the spread
    ref_mean = sum(samples) / len(samples)
    ref_std = math.sqrt(sum((x - ref_mean) ** 2 for x in samples) / len(samples))
    assert mean == pytest.approx(ref_mean, abs=1.0)
    assert std == pytest.approx(ref_std, rel=0.02)


def test_length_model_window_forgets_old_requests():
    model = LengthModel(window=4)
    for _ in range(4):
        model.add(1000, 1000)
    for _ in range(4):
        model.add(10, 10)
    mean, _ = model.slot_moments()
    assert mean == pytest.approx(10 + 10 / 2)
    assert model.prefill_per_decode_step() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "mean,std,z,budget", [(100, 0, 2, 1000), (100, 50, 2, 10_000), (1400, 900, 1.3, 16_000)]
)
def test_slots_that_fit_solves_the_clt_bound(mean, std, z, budget):
    n = slots_that_fit(mean, std, z, budget)
    assert n * mean + z * std * math.sqrt(n) == pytest.approx(budget)
    assert slots_that_fit(mean, std, z, 0) == 0


def test_latency_fit_recovers_batch_and_prefill_costs():
    rng = random.Random(1)
    fit = StepLatencyFit(half_life=10_000)
    assert fit.solve() is None
    for _ in range(2000):
        n, x = rng.randint(1, 64), rng.choice([0.0, 0.0, 0.5, 2.0])
        fit.add(n, x, 9.0 + 0.15 * n + 60.0 * x + rng.gauss(0, 0.5))
    a, b, c = fit.solve()
    assert (a, b, c) == (
        pytest.approx(9.0, abs=0.3),
        pytest.approx(0.15, abs=0.01),
        pytest.approx(60.0, abs=0.5),
    )


def test_latency_fit_needs_batch_variation():
    fit = StepLatencyFit(half_life=100)
    for _ in range(100):
        fit.add(16, 0.0, 20.0)
    assert fit.solve() is None


def test_stabilizer_band_window_and_force():
    s = Stabilizer(initial=100, tolerance=0.05, window_s=2.0)
    assert s.update(103, 0.0) == 100  # inside the band
    assert s.update(120, 0.5) == 100  # a raise needs a whole window ...
    assert s.update(104, 1.0) == 100  # (a dip inside the window)
    assert s.update(120, 2.6) == 100  # ... and the dip at t=1.0 is still in it
    assert s.update(120, 3.1) == 120  # every target of the last 2 s is 120
    assert s.update(80, 3.2) == 120  # a cut must persist for a window too
    assert s.update(80, 5.3) == 80
    s.force(10)
    assert s.limit == 10


def test_sample_window_percentile_mean_std():
    w = SampleWindow(4)
    for x in (5, 1, 4, 2, 3):
        w.add(x)
    assert len(w) == 4 and w.mean == pytest.approx(2.5)
    assert w.percentile(50) == 2 and w.percentile(100) == 4
    assert w.std == pytest.approx(math.sqrt(1.25))


def adaptive(**params):
    return make_controller(
        "adaptive",
        {"tpot_sla_ms": 1000, **params},
        max_batch_size=256,
        kv_capacity=KvCapacity(1000, 16),
    )


def test_adaptive_memory_bound_follows_learned_lengths():
    short, long_ = adaptive(), adaptive()
    for i in range(64):
        short.on_request_finish(finished(i, 200, 100))
        long_.on_request_finish(finished(i, 2000, 1000))
    run = {0: RequestState(0, 100, 100, 0.0, 0.0)}
    short.update(ControlInput(stats(0.0), 5, 0.1, run))
    long_.update(ControlInput(stats(0.0), 5, 0.1, run))
    assert short.decision.bounds["memory"] > 4 * long_.decision.bounds["memory"]
    # 16000 tokens x 0.97; one slot: p + a, a uniform in [0, 100], + half a block
    z = NormalDist().inv_cdf(0.9)
    expected = slots_that_fit(200 + 50 + 8, 100 / math.sqrt(12), z, 16000 * 0.97)
    assert short.decision.bounds["memory"] == math.floor(expected)


def test_adaptive_ignores_cancelled_requests_in_its_length_model():
    ctl = adaptive()
    ctl.on_request_finish(finished(1, 100, 3, reason=FinishReason.CANCELLED))
    ctl.on_request_finish(finished(2, 100, 3, reason=FinishReason.ERROR))
    assert len(ctl.lengths) == 0
    ctl.on_request_finish(finished(3, 100, 3, reason=FinishReason.LENGTH))
    assert len(ctl.lengths) == 1


def test_adaptive_eviction_backs_off_at_once_and_recovers_in_time():
    ctl = adaptive(pause_backoff=0.5, pause_recovery_s=10, kv_probe_max=1.0)
    for i in range(64):
        ctl.on_request_finish(finished(i, 200, 100))
    run = {0: RequestState(0, 100, 100, 0.0, 0.0)}
    before = ctl.update(ControlInput(stats(0.0), 5, 0.1, run))
    after = ctl.update(ControlInput(stats(0.1, pauses=1), 5, 0.1, run))
    assert ctl.scale == pytest.approx(0.5)
    assert after <= before * 0.5 + 1  # bypasses the stabilisation window
    ctl.update(ControlInput(stats(2.6), 5, 0.1, run))
    assert ctl.scale == pytest.approx(0.75)  # +1 per 10 s
    for k in range(100):
        ctl.update(ControlInput(stats(3.0 + k * 0.1), 5, 0.1, run))
    assert ctl.scale == pytest.approx(1.0) and ctl.limit >= before - 1


def test_adaptive_probes_above_the_model_without_evictions():
    ctl = adaptive(pause_recovery_s=10, kv_probe_max=1.5)
    for i in range(64):
        ctl.on_request_finish(finished(i, 200, 100))
    run = {0: RequestState(0, 100, 100, 0.0, 0.0)}
    ctl.update(ControlInput(stats(0.0), 5, 0.1, run))
    first = ctl.decision.bounds["memory"]
    for k in range(80):
        ctl.update(ControlInput(stats(k * 0.1), 5, 0.1, run))
    assert ctl.scale == pytest.approx(1.5)
    assert ctl.decision.bounds["memory"] == pytest.approx(1.5 * first, rel=0.02)


def test_adaptive_ttft_pressure_lifts_the_sla_bound():
    def run_with(wait):
        ctl = adaptive(tpot_sla_ms=20.0, ttft_sla_s=2.0)
        for i in range(64):
            ctl.on_request_finish(finished(i, 50, 20))
        for k in range(400):  # latency grows with the batch; 20 ms is met near n = 10
            n = 1 + k % 30
            run = {j: RequestState(j, 50, 50, 0.0, 0.0) for j in range(n)}
            ctl.update(ControlInput(stats(k * 0.02, latency=10.0 + 1.0 * n, gen=n), 10, wait, run))
        return ctl

    calm, pressed = run_with(0.5), run_with(5.0)
    assert calm.decision.reason == "sla" and calm.limit < 15
    assert pressed.decision.reason == "ttft" and pressed.limit > 30
    # the head has waited 0.6 of the TTFT: not missed yet, but the queue behind it would
    # be if the bound held it through the rest; the bound steps aside already
    about_to_miss = run_with(1.2)
    assert about_to_miss.decision.reason == "ttft" and about_to_miss.limit > 30

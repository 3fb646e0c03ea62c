"""Capacity bisection on monotone fakes with known thresholds."""

import math

import pytest
from dynabatch.bench.capacity import default_slo, find_capacity
from dynabatch.bench.metrics import Slo


@pytest.mark.parametrize("threshold, start", [(7.3, 1.0), (0.37, 1.0), (123.0, 2.0), (1.0, 1.0)])
def test_finds_known_threshold(threshold, start):
    calls = []

    def meets(rate):
        calls.append(rate)
        return rate <= threshold

    res = find_capacity(meets, start=start, rel_tol=0.01, max_probes=30)
    assert res.capacity_rps <= threshold
    assert res.capacity_rps >= threshold * 0.99
    assert res.first_failing_rps > threshold
    assert len(calls) == len(res.probes) <= 30


def test_probe_budget_is_respected_and_never_meeting_gives_zero():
    res = find_capacity(lambda r: False, start=1.0, max_probes=5)
    assert res.capacity_rps == 0.0 and len(res.probes) == 5
    res = find_capacity(lambda r: r <= 1000.0, start=1.0, rel_tol=0.001, max_probes=6)
    assert len(res.probes) == 6 and res.capacity_rps == 32.0


def test_mlperf_defaults_by_model_size():
    assert default_slo("llama-2-70b-h100-80gb-tp4") == Slo(2.0, 0.2)
    assert default_slo("llama-2-13b-a100-40gb") == Slo(2.0, 0.1)
    assert default_slo("llama-3-8b-h100") == Slo(2.0, 0.1)


@pytest.mark.parametrize("start, growth", [(1.0, 2.0), (0.37, 2.0), (5.5, 1.25), (0.9, 1.25)])
def test_on_grid_searches_of_one_threshold_agree_whatever_the_start(start, growth):
    res = find_capacity(
        lambda r: r <= 3.3, start=start, rel_tol=0.02, max_probes=30, growth=growth, on_grid=True
    )
    # the largest point of the 1.02^k grid at or below the threshold, from any start
    k = math.floor(math.log(3.3) / math.log(1.02))
    assert res.capacity_rps == pytest.approx(1.02**k, rel=1e-9)
    assert res.first_failing_rps == pytest.approx(1.02 ** (k + 1), rel=1e-9)
    for rate, _ in res.probes:
        assert math.log(rate) / math.log(1.02) == pytest.approx(
            round(math.log(rate) / math.log(1.02)), abs=1e-6
        )

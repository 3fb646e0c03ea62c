"""The two shortcuts of the capacity search keep every probe's pass/fail bit:
a probe stops once its P99 SLO miss is certain (slo_watch.py), and a static limit that
never bound reuses its probe for higher limits (probe_memo.py)."""

import numpy as np
import pytest
from dynabatch.bench.capacity_runner import CapacityJob, run_capacity_group, run_capacity_job
from dynabatch.bench.grid_cells import WORKLOADS, slo_level
from dynabatch.bench.metrics import meets_slo_percentile
from dynabatch.bench.probe_memo import ProbeMemo, StaticProbe
from dynabatch.bench.runner import run_policy
from dynabatch.bench.slo_watch import misses_needed
from dynabatch.bench.suite import static_spec
from dynabatch.bench.workload import resample

PROFILE = "llama-2-13b-a100-40gb"
SLO = slo_level("server", PROFILE)


@pytest.mark.parametrize("n", [1, 2, 3, 50, 99, 100, 101, 250, 2000, 2001])
def test_misses_needed_make_p99_miss_whatever_the_other_values(n):
    rng = np.random.default_rng(n)
    m = misses_needed(n)
    assert m <= n + 1
    if m > n:
        return  # too few values to decide early: the run goes to the end
    for _ in range(20):  # the misses just above the SLO, the rest anywhere below it
        values = np.concatenate([1.0 + rng.uniform(1e-9, 1e-6, m), rng.uniform(0, 1.0, n - m)])
        assert np.percentile(rng.permutation(values), 99) > 1.0


def _probe(rate, spec, *, stop):
    wl = resample(WORKLOADS["conv"].lengths(), 250, rate, seed=3)
    return run_policy(wl, PROFILE, spec, slo=SLO, stop_at_slo_miss=stop).row


@pytest.mark.parametrize("rate", [0.5, 1.5])
def test_a_probe_stopped_at_a_certain_miss_gives_the_full_runs_answer(rate):
    spec = static_spec(16, "max_utilization")
    full, short = _probe(rate, spec, stop=False), _probe(rate, spec, stop=True)
    assert meets_slo_percentile(short, SLO) == meets_slo_percentile(full, SLO)
    if meets_slo_percentile(full, SLO):  # a passing probe runs to the end, unchanged
        assert not short["slo_missed_early"] and short["iterations"] == full["iterations"]
    else:  # far above capacity: the miss is certain long before the end
        assert short["slo_missed_early"] and short["iterations"] < full["iterations"] / 2


def test_a_limit_that_bound_is_never_reused_for_another_limit():
    memo = ProbeMemo()
    memo.add(0, 1.0, StaticProbe(8, 256, peak_running=8, limit_bound=True, ok=False))
    memo.add(0, 2.0, StaticProbe(8, 256, peak_running=6, limit_bound=False, ok=True))
    assert memo.lookup(0, 1.0, 16, 256) is None  # 8 held requests back: 16 may differ
    assert memo.lookup(0, 1.0, 8, 256) is False  # the same configuration
    assert memo.lookup(0, 2.0, 16, 256) is True  # never bound: any limit >= 6 is that run
    assert memo.lookup(0, 2.0, 5, 256) is None  # below the peak it would bind
    assert memo.lookup(1, 2.0, 16, 256) is None  # another seed: other arrivals
    assert memo.reused == 2


def test_a_sweep_with_the_memo_finds_the_capacities_of_separate_searches():
    lengths = WORKLOADS["conv"].lengths()
    jobs = [
        CapacityJob(lengths, PROFILE, static_spec(n, "max_utilization"), SLO, 100, 0.6, 0.05, 8)
        for n in (12, 64, 512)
    ]
    grouped = run_capacity_group(jobs)
    for job, rows in zip(jobs, grouped):
        alone = run_capacity_job(job)
        assert [r["capacity_rps"] for r in rows] == [r["capacity_rps"] for r in alone]
        assert rows[0]["probes"] == alone[0]["probes"]
    # the lowest limit runs every probe; on this memory-bound profile 64 rarely binds,
    # and 512 never does: it runs nothing of its own
    assert grouped[0][0]["probes_run"] == grouped[0][0]["probes"]
    assert grouped[1][0]["probes_run"] < grouped[1][0]["probes"]
    assert grouped[2][0]["probes_run"] == 0


def test_a_row_stopped_early_fails_even_when_what_it_served_met_the_slo():
    # the requests served before the stop may all be fast; the miss is in the rest
    row = {"completed": 40, "failed": 0, "ttft_p99_s": 0.1, "tpot_p99_s": 0.01}
    assert meets_slo_percentile(row, SLO)
    assert not meets_slo_percentile({**row, "slo_missed_early": True}, SLO)

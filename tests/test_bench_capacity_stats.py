"""Paired-seed capacity summaries: medians, min-max, win/tie/loss, best static."""

import pytest
from dynabatch.bench.capacity_stats import summarize_seeds, win_tie_loss
from dynabatch.bench.workload import resample, synthetic


def _seed_rows(policy, caps, static=False):
    return [
        {
            "policy": policy,
            "controller": "static" if static else policy,
            "capacity_policy": "max_utilization",
            "static": static,
            "profile": "p",
            "workload": "w",
            "requests_per_probe": 2000,
            "rel_tol": 0.02,
            "slo_ttft_s": 2.0,
            "slo_tpot_s": 0.1,
            "seed": seed,
            "capacity_rps": cap,
            "first_failing_rps": cap * 1.02,
            "probes": 5,
            "probe_log": [],
        }
        for seed, cap in enumerate(caps)
    ]


def test_win_tie_loss_counts_within_tolerance_as_tie():
    assert win_tie_loss([1.05, 1.01, 0.99, 0.97, 1.0], 0.02) == (1, 3, 1)


def test_medians_min_max_and_paired_comparisons():
    rows = summarize_seeds(
        _seed_rows("static-16/maxu", [6.0, 7.0, 6.0, 7.0, 6.5], static=True)
        + _seed_rows("static-32/maxu", [6.0, 6.0, 5.0, 6.0, 6.0], static=True)
        + _seed_rows("trtllm_default", [6.75, 7.75, 4.0, 6.0, 6.25], static=True)
        + _seed_rows("adaptive", [8.75, 7.0, 4.0, 6.5, 6.25]),
        tolerance=0.02,
    )
    ours = next(r for r in rows if r["policy"] == "adaptive")
    assert ours["capacity_rps"] == 6.5
    assert (ours["capacity_min_rps"], ours["capacity_max_rps"]) == (4.0, 8.75)
    # best static = the highest median (static-16/maxu: 6.5 beats trtllm_default's 6.25)
    assert ours["best_static"] == "static-16/maxu"
    assert ours["vs_best_static"] == pytest.approx(1.0)
    assert ours["vs_best_static_min"] == pytest.approx(4.0 / 6.0)
    # per seed vs static-16: 8.75/6 win, 7/7 tie, 4/6 loss, 6.5/7 loss, 6.25/6.5 loss
    assert ours["wtl_best_static"] == "1/1/3"
    assert ours["wtl_trtllm_default"] == "2/2/1"
    assert ours["vs_trtllm_default"] == pytest.approx(6.5 / 6.25)
    assert "vs_paper" not in ours  # no such row in the cell


def test_resample_pairs_arrivals_across_rates_and_policies():
    lengths = synthetic(50, 1.0, seed=3)
    for arrival, cv in (("poisson", 1.0), ("gamma", 3.0)):
        slow = resample(lengths, 200, 2.0, seed=7, arrival=arrival, cv=cv)
        fast = resample(lengths, 200, 4.0, seed=7, arrival=arrival, cv=cv)
        assert [i.prompt_len for i in slow.items] == [i.prompt_len for i in fast.items]
        assert [i.arrival_s / 2 for i in slow.items] == pytest.approx(
            [i.arrival_s for i in fast.items]
        )
        other = resample(lengths, 200, 2.0, seed=8, arrival=arrival, cv=cv)
        assert [i.arrival_s for i in other.items] != [i.arrival_s for i in slow.items]
    gaps = [b.arrival_s - a.arrival_s for a, b in zip(fast.items, fast.items[1:])]
    mean = sum(gaps) / len(gaps)
    cv_seen = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5 / mean
    assert cv_seen > 2.0  # bursty: far above Poisson's 1


def test_static_limits_make_the_swept_line_up_with_paired_seeds():
    import argparse

    from dynabatch.bench.capacity_runner import capacity_jobs

    args = argparse.Namespace(
        policies=None,
        static_limits="6,10",
        slo_ttft=None,
        slo_tpot=None,
        requests=50,
        start_rate=1.0,
        rel_tol=0.02,
        max_probes=8,
        arrival="gamma",
        cv=3.0,
    )
    jobs = capacity_jobs([synthetic(20, 1.0)], ["llama-3-8b-h100"], args, (0, 1, 2))
    statics = [j.spec.name for j in jobs if j.spec.policy == "static"]
    assert statics == [
        "trtllm_default",
        "vllm_default",
        "static-6/gne",
        "static-10/gne",
        "static-6/maxu",
        "static-10/maxu",
    ]
    assert all(j.seeds == (0, 1, 2) and j.arrival == "gamma" and j.cv == 3.0 for j in jobs)

"""`dynabatch capacity`: each policy's highest request rate under the P99 SLOs, over
paired seeds.

Each probe replays `--requests` arrivals at the probed rate, with (prompt, output)
pairs drawn from the given trace (or synthetic workload). The seed fixes the draw and
the arrival pattern: every policy sees the same requests at the same times for a given
seed and rate (paired seeds), so per-seed ratios between policies are meaningful, and
only the rate varies between one search's probes. Per policy the table reports the
median capacity over seeds with its min-max (capacity_stats.py).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .capacity import find_capacity
from .capacity_stats import summarize_seeds
from .metrics import Slo, meets_slo_percentile
from .report import Progress
from .runner import PolicySpec, run_policy
from .workload import Workload, resample

DEFAULT_SEEDS = (0, 1, 2, 3, 4)
DEFAULT_REQUESTS = 2000
DEFAULT_REL_TOL = 0.02


@dataclass(frozen=True)
class CapacityJob:
    lengths: Workload
    profile: str
    spec: PolicySpec
    slo: Slo
    requests: int
    start: float
    rel_tol: float
    max_probes: int
    seeds: tuple[int, ...] = (0,)
    arrival: str = "poisson"  # or "gamma" (bursty, coefficient of variation cv)
    cv: float = 1.0


def probe_workload(job: CapacityJob, rate: float, seed: int) -> Workload:
    """The arrivals of one probe: the same for every policy at this seed and rate."""
    return resample(job.lengths, job.requests, rate, seed=seed, arrival=job.arrival, cv=job.cv)


# Later seeds start at the previous seed's capacity and bracket in steps of this factor
# (seeds differ by tens of percent, rarely 2x): about half the probes of a cold search.
_WARM_GROWTH = 1.25


def run_capacity_job(job: CapacityJob) -> list[dict]:
    """One policy's capacity searches, one per seed (rows in seed order)."""
    rows, start, growth = [], job.start, 2.0
    for seed in job.seeds:
        rows.append(_search(job, seed, start, growth))
        if rows[-1]["capacity_rps"] > 0:
            start, growth = rows[-1]["capacity_rps"], _WARM_GROWTH
    return rows


def _search(job: CapacityJob, seed: int, start: float, growth: float) -> dict:
    def meets(rate: float) -> bool:
        wl = probe_workload(job, rate, seed)
        run = run_policy(wl, job.profile, job.spec, slo=job.slo, stop_at_slo_miss=True)
        return meets_slo_percentile(run.row, job.slo)

    res = find_capacity(
        meets,
        start=start,
        rel_tol=job.rel_tol,
        max_probes=job.max_probes,
        growth=growth,
        on_grid=True,  # every policy probes the same rates: equal thresholds tie exactly
    )
    return {
        "policy": job.spec.name,
        "controller": job.spec.policy,
        "capacity_policy": job.spec.capacity_policy,
        "static": job.spec.static,
        "profile": job.profile,
        "workload": job.lengths.name,
        "seed": seed,
        "capacity_rps": res.capacity_rps,
        "first_failing_rps": res.first_failing_rps
        if res.first_failing_rps is not None
        else math.nan,
        "probes": len(res.probes),
        "probe_log": [[round(r, 4), ok] for r, ok in res.probes],
        "requests_per_probe": job.requests,
        "rel_tol": job.rel_tol,
        "slo_ttft_s": job.slo.ttft_s,
        "slo_tpot_s": job.slo.tpot_s,
    }


def run_capacity_jobs(jobs: Sequence[CapacityJob], workers: int, label: str) -> list[dict]:
    """Every search, in parallel processes when workers > 1; per-seed rows in job order."""
    progress = Progress(len(jobs), label)
    results: list = [None] * len(jobs)

    def done(k: int, rows: list[dict]) -> None:
        results[k] = rows
        caps = "/".join(f"{r['capacity_rps']:.3g}" for r in rows)
        progress.advance(f"{rows[0]['policy']} {caps} req/s")

    if workers <= 1 or len(jobs) <= 1:
        for k, job in enumerate(jobs):
            done(k, run_capacity_job(job))
        return [row for rows in results for row in rows]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_capacity_job, job): k for k, job in enumerate(jobs)}
        for fut in as_completed(futures):
            done(futures[fut], fut.result())
    return [row for rows in results for row in rows]


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0-4' or '0,2,7' -> seeds; ValueError naming the option otherwise."""
    try:
        if "-" in text.strip("-"):
            lo, hi = text.split("-", 1)
            seeds = tuple(range(int(lo), int(hi) + 1))
        else:
            seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--seeds expects A-B or a comma list of integers, got {text!r}") from None
    if not seeds:
        raise ValueError(f"--seeds names no seed: {text!r}")
    return seeds


def parse_limits(text: str) -> tuple[int, ...]:
    """'4,8,16' -> static limits; ValueError naming --static-limits otherwise."""
    try:
        limits = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--static-limits expects N,N,... integers, got {text!r}") from None
    if not limits or min(limits) < 1:
        raise ValueError(f"--static-limits expects limits >= 1, got {text!r}")
    return limits


def capacity_jobs(
    workloads: Sequence[Workload], profiles: Sequence[str], args, seeds: Sequence[int]
) -> list[CapacityJob]:
    from .matrix import slo_for
    from .suite import STATIC_LIMITS, policy_lineup, select

    jobs = []
    for wl in workloads:
        for prof in profiles:
            limits = getattr(args, "static_limits", None)
            if isinstance(limits, str):
                limits = parse_limits(limits)
            lineup = policy_lineup(prof, limits or STATIC_LIMITS)
            specs = select(lineup, args.policies.split(",") if args.policies else None)
            jobs += [
                CapacityJob(
                    wl,
                    prof,
                    s,
                    slo_for(args, prof),
                    args.requests,
                    args.start_rate,
                    args.rel_tol,
                    args.max_probes,
                    tuple(seeds),
                    getattr(args, "arrival", "poisson"),
                    getattr(args, "cv", 1.0),
                )
                for s in specs
            ]
    return jobs


def capacity_table(workloads: list[Workload], profiles: list[str], args) -> list[dict]:
    """One row per (workload, profile, policy): median capacity over the seeds, min-max,
    and per-seed win/tie/loss against the baselines (capacity_stats.py)."""
    seeds = parse_seeds(args.seeds) if isinstance(args.seeds, str) else tuple(args.seeds)
    jobs = capacity_jobs(workloads, profiles, args, seeds)
    seed_rows = run_capacity_jobs(jobs, max(1, args.jobs), "capacity")
    rows = summarize_seeds(seed_rows, tolerance=args.rel_tol)
    print(f"capacity: {len(jobs)} searches done", file=sys.stderr)
    return rows

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
from .probe_memo import ProbeMemo, StaticProbe
from .report import Progress
from .runner import PolicySpec, run_policy
from .suite import ENGINE_MAX_BATCH
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


def run_capacity_job(job: CapacityJob, memo: ProbeMemo | None = None) -> list[dict]:
    """One policy's capacity searches, one per seed (rows in seed order). `memo`: the
    probes of the static limits run before on the same cell and capacity policy."""
    rows, start, growth = [], job.start, 2.0
    for seed in job.seeds:
        rows.append(_search(job, seed, start, growth, memo))
        if rows[-1]["capacity_rps"] > 0:
            start, growth = rows[-1]["capacity_rps"], _WARM_GROWTH
    return rows


def static_limit(spec: PolicySpec) -> tuple[int, int] | None:
    """(limit, engine max batch) of a static policy; None for the others."""
    if not spec.static or spec.policy != "static":
        return None
    return int(dict(spec.params)["static_batch_size"]), spec.max_batch_size or ENGINE_MAX_BATCH


def _search(
    job: CapacityJob, seed: int, start: float, growth: float, memo: ProbeMemo | None
) -> dict:
    static = static_limit(job.spec) if memo is not None else None
    ran = 0

    def meets(rate: float) -> bool:
        nonlocal ran
        if static is not None and memo is not None:
            known = memo.lookup(seed, rate, *static)
            if known is not None:
                return known
        wl = probe_workload(job, rate, seed)
        run = run_policy(wl, job.profile, job.spec, slo=job.slo, stop_at_slo_miss=True)
        ran += 1
        ok = meets_slo_percentile(run.row, job.slo)
        if static is not None and memo is not None:
            memo.add(
                seed,
                rate,
                StaticProbe(*static, run.row["peak_running"], run.row["limit_bound"], ok),
            )
        return ok

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
        "probes_run": ran,  # the others were the same run as a lower limit's (probe_memo.py)
        "probe_log": [[round(r, 4), ok] for r, ok in res.probes],
        "requests_per_probe": job.requests,
        "rel_tol": job.rel_tol,
        "slo_ttft_s": job.slo.ttft_s,
        "slo_tpot_s": job.slo.tpot_s,
    }


def run_capacity_group(jobs: Sequence[CapacityJob]) -> list[list[dict]]:
    """Searches that share one probe memo (static limits of one cell and capacity
    policy), lowest limit first so the higher ones find its probes; rows in job order."""
    memo = ProbeMemo()
    order = sorted(range(len(jobs)), key=lambda k: static_limit(jobs[k].spec) or (0, 0))
    out: list[list[dict]] = [[] for _ in jobs]
    for k in order:
        out[k] = run_capacity_job(jobs[k], memo)
    return out


def _group_key(k: int, job: CapacityJob) -> tuple:
    """Static limits on the same cell, seeds and search settings share a memo; every
    other policy searches alone."""
    if static_limit(job.spec) is None:
        return ("alone", k)
    return (
        job.lengths.name,
        job.profile,
        job.slo,
        job.requests,
        job.arrival,
        job.cv,
        job.seeds,
        job.start,
        job.rel_tol,
        job.max_probes,
        job.spec.capacity_policy,
    )


def run_capacity_jobs(jobs: Sequence[CapacityJob], workers: int, label: str) -> list[dict]:
    """Every search, in parallel processes when workers > 1; per-seed rows in job order."""
    progress = Progress(len(jobs), label)
    results: list = [None] * len(jobs)
    groups: dict[tuple, list[int]] = {}
    for k, job in enumerate(jobs):
        groups.setdefault(_group_key(k, job), []).append(k)

    def done(members: list[int], group_rows: list[list[dict]]) -> None:
        for k, rows in zip(members, group_rows):
            results[k] = rows
            caps = "/".join(f"{r['capacity_rps']:.3g}" for r in rows)
            progress.advance(f"{rows[0]['policy']} {caps} req/s")

    if workers <= 1 or len(groups) <= 1:
        for members in groups.values():
            done(members, run_capacity_group([jobs[k] for k in members]))
        return [row for rows in results for row in rows]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        # the largest groups first, so that no long one starts last
        ordered = sorted(groups.values(), key=len, reverse=True)
        futures = {
            pool.submit(run_capacity_group, [jobs[k] for k in members]): members
            for members in ordered
        }
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
    from .policy_options import apply_policy_params, parse_policy_params
    from .suite import STATIC_LIMITS, policy_lineup, select

    params = parse_policy_params(getattr(args, "policy_param", None))
    jobs = []
    for wl in workloads:
        for prof in profiles:
            limits = getattr(args, "static_limits", None)
            if isinstance(limits, str):
                limits = parse_limits(limits)
            lineup = policy_lineup(prof, limits or STATIC_LIMITS)
            specs = select(lineup, args.policies.split(",") if args.policies else None)
            specs = apply_policy_params(specs, params)
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

"""`dynabatch capacity`: bisect each policy's highest Poisson rate under the P99 SLOs.

Each probe replays `--requests` Poisson arrivals at the probed rate, with (prompt,
output) pairs drawn from the given trace (or synthetic workload), so only the rate
varies between probes. Same seed at every rate: the probes differ by rate alone.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from .capacity import find_capacity
from .metrics import Slo, meets_slo_percentile
from .report import Progress
from .runner import PolicySpec, run_policy
from .workload import Workload, resample


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
    seed: int = 0


def run_capacity_job(job: CapacityJob) -> dict:
    def meets(rate: float) -> bool:
        wl = resample(job.lengths, job.requests, rate, seed=job.seed)
        return meets_slo_percentile(run_policy(wl, job.profile, job.spec, slo=job.slo).row, job.slo)

    res = find_capacity(meets, start=job.start, rel_tol=job.rel_tol, max_probes=job.max_probes)
    return {
        "policy": job.spec.name,
        "controller": job.spec.policy,
        "capacity_policy": job.spec.capacity_policy,
        "static": job.spec.static,
        "profile": job.profile,
        "workload": job.lengths.name,
        "capacity_rps": res.capacity_rps,
        "first_failing_rps": res.first_failing_rps
        if res.first_failing_rps is not None
        else math.nan,
        "probes": len(res.probes),
        "probe_log": [[round(r, 4), ok] for r, ok in res.probes],
        "requests_per_probe": job.requests,
        "slo_ttft_s": job.slo.ttft_s,
        "slo_tpot_s": job.slo.tpot_s,
    }


def capacity_table(workloads: list[Workload], profiles: list[str], args) -> list[dict]:
    from .commands import slo_for
    from .suite import policy_lineup, select

    jobs = []
    for wl in workloads:
        for prof in profiles:
            specs = select(policy_lineup(prof), args.policies.split(",") if args.policies else None)
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
                    args.seed,
                )
                for s in specs
            ]
    progress = Progress(len(jobs), "capacity")
    rows: list = [None] * len(jobs)
    done = lambda k, row: (
        rows.__setitem__(k, row),
        progress.advance(f"{row['policy']} {row['capacity_rps']:.2f} req/s"),
    )
    if args.jobs <= 1 or len(jobs) == 1:
        for k, job in enumerate(jobs):
            done(k, run_capacity_job(job))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
            futures = {pool.submit(run_capacity_job, job): k for k, job in enumerate(jobs)}
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
    for wl in workloads:  # capacity relative to TensorRT-LLM's default, per group
        for prof in profiles:
            group = [r for r in rows if r["workload"] == wl.name and r["profile"] == prof]
            base = next((r["capacity_rps"] for r in group if r["policy"] == "trtllm_default"), None)
            for r in group:
                r["vs_trtllm_default"] = r["capacity_rps"] / base if base else math.nan
    print(f"capacity: {len(jobs)} searches done", file=sys.stderr)
    return rows

"""Capacity of a fleet under SLOs: the highest fleet-wide request rate at which the P99
TTFT and TPOT of all its requests still meet the SLO. The same bracket-and-bisect as
`dynabatch capacity`; every probe of one seed replays the same draw of lengths and
arrival noise, so probes differ by rate alone and routers compare on paired seeds."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..bench.capacity import find_capacity
from ..bench.metrics import meets_slo_percentile
from .sim import FleetConfig, SloBroken, run_fleet
from .workloads import fleet_workload, length_mix


@dataclass(frozen=True)
class FleetCapacityJob:
    workload: str
    cfg: FleetConfig
    requests_per_replica: int
    seed: int
    start_rps_per_replica: float = 1.0
    rel_tol: float = 0.03
    max_probes: int = 12


def run_fleet_capacity(job: FleetCapacityJob) -> dict:
    mix = length_mix(job.workload)
    n = job.requests_per_replica * job.cfg.replicas
    # The seed also fixes the pods' scrape phases and the picker's tie-breaks: every
    # probe of one seed sees the same ones, every seed its own.
    cfg = dataclasses.replace(job.cfg, seed=job.seed)

    def meets(rate: float) -> bool:
        wl = fleet_workload(mix, n, rate, seed=job.seed)
        try:
            row = run_fleet(wl, cfg, stop_on_slo_miss=True)
        except SloBroken:
            return False
        return meets_slo_percentile(row, job.cfg.slo)

    res = find_capacity(
        meets,
        start=job.start_rps_per_replica * job.cfg.replicas,
        rel_tol=job.rel_tol,
        max_probes=job.max_probes,
    )
    return {
        "workload": job.workload,
        "replicas": job.cfg.replicas,
        "router": job.cfg.router,
        "policy": job.cfg.policy.name,
        "profile": job.cfg.profile,
        "seed": job.seed,
        "capacity_rps": res.capacity_rps,
        "first_failing_rps": res.first_failing_rps
        if res.first_failing_rps is not None
        else math.nan,
        "probes": len(res.probes),
        "requests_per_probe": n,
        "slo_ttft_s": job.cfg.slo.ttft_s,
        "slo_tpot_s": job.cfg.slo.tpot_s,
        "scrape_interval_s": job.cfg.scrape.interval_s,
        "staleness_s": job.cfg.scrape.staleness_s,
        "metrics_interval_s": job.cfg.scrape.metrics_interval_s,
        "spread_phases": job.cfg.scrape.spread_phases,
    }

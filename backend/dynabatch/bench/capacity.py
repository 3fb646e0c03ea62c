"""Capacity: the highest Poisson request rate at which the P99 SLOs still hold.

`find_capacity` is a plain bracket-and-bisect over a predicate that is assumed
monotone (true at low rates, false above the capacity); `policy_capacity` plugs the
virtual-clock benchmark into it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .metrics import Slo, meets_slo_percentile

# MLPerf server scenario SLOs by model size (docs/BENCHMARKS.md).
MLPERF_SLO = {"70b": Slo(2.0, 0.2), "13b": Slo(2.0, 0.1), "8b": Slo(2.0, 0.1), "7b": Slo(2.0, 0.1)}


def default_slo(profile: str) -> Slo:
    """The MLPerf server SLO for the model size named in a profile slug."""
    name = profile.lower()
    for size, slo in MLPERF_SLO.items():
        if f"-{size}" in name or name.startswith(size):
            return slo
    return Slo(2.0, 0.1)


@dataclass
class CapacityResult:
    capacity_rps: float  # highest rate seen to meet the SLO (0 if none)
    first_failing_rps: float | None  # lowest rate seen to miss it (None if never)
    probes: list[tuple[float, bool]] = field(default_factory=list)


def find_capacity(
    meets: Callable[[float], bool],
    *,
    start: float = 1.0,
    rel_tol: float = 0.03,
    max_probes: int = 16,
    floor: float = 1e-3,
    ceiling: float = 1e4,
) -> CapacityResult:
    """Bracket the threshold by doubling/halving from `start`, then bisect until the
    bracket is within `rel_tol` (relative) or `max_probes` evaluations are spent."""
    if start <= 0 or rel_tol <= 0 or max_probes < 2:
        raise ValueError("find_capacity needs start > 0, rel_tol > 0, max_probes >= 2")
    probes: list[tuple[float, bool]] = []

    def probe(rate: float) -> bool:
        ok = bool(meets(rate))
        probes.append((rate, ok))
        return ok

    lo, hi = 0.0, None
    rate = start
    if probe(rate):
        lo = rate
        while len(probes) < max_probes and rate < ceiling:  # grow until it fails
            rate = min(rate * 2, ceiling)
            if probe(rate):
                lo = rate
            else:
                hi = rate
                break
    else:
        hi = rate
        while len(probes) < max_probes and rate > floor:  # shrink until it holds
            rate = max(rate / 2, floor)
            if probe(rate):
                lo = rate
                break
            hi = rate
    while hi is not None and lo > 0 and len(probes) < max_probes and (hi - lo) > rel_tol * lo:
        mid = (lo + hi) / 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return CapacityResult(capacity_rps=lo, first_failing_rps=hi, probes=probes)


def slo_predicate(
    run_at_rate: Callable[[float], dict], slo: Slo, q: int = 99
) -> Callable[[float], bool]:
    """Turn 'run a benchmark at this rate, return its summary row' into the predicate."""
    return lambda rate: meets_slo_percentile(run_at_rate(rate), slo, q)

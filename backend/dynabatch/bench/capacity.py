"""Capacity: the highest Poisson request rate at which the P99 SLOs still hold.

`find_capacity` is a plain bracket-and-bisect over a predicate that is assumed
monotone (true at low rates, false above the capacity); `policy_capacity` plugs the
virtual-clock benchmark into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .metrics import Slo

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
    growth: float = 2.0,
    on_grid: bool = False,
) -> CapacityResult:
    """Bracket the threshold by multiplying/dividing `start` by `growth`, then bisect
    until the bracket is within `rel_tol` (relative) or `max_probes` evaluations are
    spent. A start near the answer with a small growth (a warm start) saves probes.

    `on_grid`: every probed rate is a point of the fixed geometric grid (1 + rel_tol)^k
    req/s, and bisection runs to adjacent points. Two searches of the same threshold
    then return the same capacity whatever their start or path, so paired comparisons
    see ties as ties, not as one bisection step of noise."""
    if start <= 0 or rel_tol <= 0 or max_probes < 2 or growth <= 1:
        raise ValueError("find_capacity needs start > 0, rel_tol > 0, max_probes >= 2, growth > 1")
    probes: list[tuple[float, bool]] = []
    log_step = math.log1p(rel_tol)

    def snap(rate: float) -> float:
        return math.exp(round(math.log(rate) / log_step) * log_step) if on_grid else rate

    def probe(rate: float) -> bool:
        ok = bool(meets(rate))
        probes.append((rate, ok))
        return ok

    if on_grid:
        start = snap(start)
        growth = max(growth, 1 + rel_tol)

    lo, hi = 0.0, None
    rate = start
    if probe(rate):
        lo = rate
        while len(probes) < max_probes and rate < ceiling:  # grow until it fails
            rate = min(snap(rate * growth), ceiling)
            if probe(rate):
                lo = rate
            else:
                hi = rate
                break
    else:
        hi = rate
        while len(probes) < max_probes and rate > floor:  # shrink until it holds
            rate = max(snap(rate / growth), floor)
            if probe(rate):
                lo = rate
                break
            hi = rate
    while hi is not None and lo > 0 and len(probes) < max_probes and (hi - lo) > rel_tol * lo:
        mid = snap(math.sqrt(lo * hi))  # geometric: the tolerance is relative
        if on_grid and not lo * (1 + 1e-9) < mid < hi * (1 - 1e-9):
            break  # adjacent grid points: as fine as the grid goes
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return CapacityResult(capacity_rps=lo, first_failing_rps=hi, probes=probes)

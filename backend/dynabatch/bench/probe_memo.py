"""Reuse a static limit's probe for every higher limit it cannot differ from.

A static limit N only acts when it holds a request back: after admission the gate
still holds one. If in a probe it never did, every admission happened the moment the
request arrived, and at most `peak` requests were admitted at once. Run the same
arrivals with any limit N' >= peak (and an engine max batch >= peak, so the engine
holds them all as well) and every pass makes the same decisions: the run, and so the
probe's pass/fail bit, is the same. That is an identity, not an approximation, so the
sweep of limits 4..512 reuses the probes of the limits below wherever they never
bound (on a memory-bound profile, everything from the cache's fit upwards).

Runs stopped early at a certain SLO miss (slo_watch.py) reuse the same way: the other
limit's run is the same up to that point, so it stops there too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StaticProbe:
    limit: int
    engine_max_batch: int
    peak_running: int  # most requests admitted at once
    limit_bound: bool  # the limit held a request back at least once
    ok: bool  # the probe met the SLO


@dataclass
class ProbeMemo:
    """Probes of static limits under one capacity policy on one cell, by (seed, rate)."""

    probes: dict[tuple[int, float], list[StaticProbe]] = field(default_factory=dict)
    reused: int = 0

    def add(self, seed: int, rate: float, probe: StaticProbe) -> None:
        self.probes.setdefault((seed, rate), []).append(probe)

    def lookup(self, seed: int, rate: float, limit: int, engine_max_batch: int) -> bool | None:
        """The pass/fail bit of limit `limit` at this (seed, rate) if a probe already
        run must give the same run; None if it has to be run."""
        for p in self.probes.get((seed, rate), ()):
            same = p.limit == limit and p.engine_max_batch == engine_max_batch
            free = not p.limit_bound and min(limit, engine_max_batch) >= p.peak_running
            if same or free:
                self.reused += 1
                return p.ok
        return None

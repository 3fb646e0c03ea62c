"""When the endpoint picker's view of each pod changes: two clocks per replica.

1. The pod refreshes its gauges. dynabatch's serving loop sets the `/metrics` gauges
   every `metrics_interval_ms` (100 ms by default), from the engine's latest iteration
   stats and its own queue, so a scrape returns the values of the last refresh.
2. The picker reads each pod on its own ticker (one goroutine per pod,
   `--refresh-metrics-interval`, 50 ms by default), so the pods' views change at
   different instants, not all at once.

Neither clock is aligned with the other or across pods: each replica gets its own phase
on both, drawn from the run's seed (deterministic per seed). `metrics_interval_s = 0`
reads the state live at every picker refresh (an exporter that is never behind);
`spread_phases = False` puts every tick of every pod at the same instants.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import MODEL_PARAMS
from .replica import Replica, ReplicaMetrics

DEFAULT_METRICS_INTERVAL_S = (
    next(p.default for p in MODEL_PARAMS if p.name == "metrics_interval_ms") / 1000.0
)


@dataclass(frozen=True)
class ScrapeConfig:
    # The endpoint picker refreshes each pod's metrics every 50 ms (--refresh-metrics-interval)
    interval_s: float = 0.05
    # Older metrics count as saturated (the utilization detector's metricsStalenessThreshold)
    staleness_s: float = 0.2
    # How often a pod refreshes its gauges: dynabatch's metrics_interval_ms default
    metrics_interval_s: float = DEFAULT_METRICS_INTERVAL_S
    # Each pod's tickers start at their own phase (False: all tick together at 0, k * period)
    spread_phases: bool = True


class _Ticker:
    """Ticks at phase + j * period; hands out the latest tick not yet consumed."""

    __slots__ = ("period", "next")

    def __init__(self, period: float, phase: float) -> None:
        self.period = period
        self.next = phase  # the first tick not yet consumed

    def pop_until(self, t: float) -> float | None:
        """Consume every tick at or before `t`; return the latest of them (None: none)."""
        if self.next > t:
            return None
        last = self.next + math.floor((t - self.next) / self.period) * self.period
        self.next = last + self.period
        return last


class ScrapeClock:
    """The picker's current view of every replica, kept up to date as fleet time moves.

    `advance(t)` runs every tick due by `t`. Nothing happens between two fleet events, so
    every tick in between saw the state the replicas are in when `advance` is called,
    before anything that happens at `t`."""

    def __init__(self, replicas: Sequence[Replica], cfg: ScrapeConfig, seed: int) -> None:
        if cfg.interval_s <= 0:
            raise ValueError(f"scrape interval must be > 0 s, got {cfg.interval_s}")
        if cfg.metrics_interval_s < 0:
            raise ValueError(f"metrics interval must be >= 0 s, got {cfg.metrics_interval_s}")
        rng = random.Random(f"scrape-phases/{seed}")

        def phase(period: float) -> float:
            return rng.uniform(0.0, period) if cfg.spread_phases else 0.0

        self.replicas = replicas
        self.pickers = [_Ticker(cfg.interval_s, phase(cfg.interval_s)) for _ in replicas]
        self.refreshes = (
            [_Ticker(cfg.metrics_interval_s, phase(cfg.metrics_interval_s)) for _ in replicas]
            if cfg.metrics_interval_s > 0
            else None
        )
        # Before the workload starts every pod is idle, its gauges set and read at 0.
        self.gauges: list[ReplicaMetrics] = [r.scrape(0.0) for r in replicas]
        self.views: list[ReplicaMetrics | None] = list(self.gauges)
        self._next_due = self._earliest_tick()

    def _earliest_tick(self) -> float:
        tickers = self.pickers + (self.refreshes or [])
        return min(k.next for k in tickers)

    def advance(self, t: float) -> None:
        if t < self._next_due:
            return
        for k, replica in enumerate(self.replicas):
            picker = self.pickers[k]
            if self.refreshes is None:  # live gauges: the picker reads the state itself
                read = picker.pop_until(t)
                if read is not None:
                    self.views[k] = replica.scrape(read)
                continue
            refresh = self.refreshes[k]
            refreshed_by_read = refresh.next  # the first refresh since the last advance
            read = picker.pop_until(t)
            previous = self.gauges[k]
            refreshed = refresh.pop_until(t)
            if refreshed is not None:
                self.gauges[k] = replica.scrape(refreshed)
            if read is not None:
                # The read sees the newest refresh at or before it: one since the last
                # advance shows the current state, else the gauges as they were.
                source = self.gauges[k] if refreshed_by_read <= read else previous
                self.views[k] = dataclasses.replace(source, scraped_at=read)
        self._next_due = self._earliest_tick()

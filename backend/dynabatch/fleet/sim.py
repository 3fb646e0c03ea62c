"""Run a workload through N replicas and a router on one virtual clock.

Every replica's SimulatedExecutor keeps its own clock; the fleet always advances the
replica that is furthest behind, and routes an arrival once every busy replica has
reached its time. A busy replica has then finished the iteration in flight at the
arrival, so what the router (and a scrape) sees is at most one iteration ahead of the
arrival: the same granularity at which a real engine takes in new requests.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..bench.metrics import RequestRecord, Slo, summarize
from ..bench.runner import PolicySpec, _Sink
from ..bench.workload import Workload
from .replica import Replica, ReplicaMetrics, request_tokens
from .routers import make_router, router_stats
from .scrape import ScrapeClock, ScrapeConfig

DEFAULT_POLICY = PolicySpec("adaptive", "adaptive")


@dataclass(frozen=True)
class FleetConfig:
    replicas: int
    router: str
    profile: str
    slo: Slo
    policy: PolicySpec = DEFAULT_POLICY
    max_batch_size: int = 256
    scrape: ScrapeConfig = ScrapeConfig()
    seed: int = 0  # the gateway picker's tie-break and the pods' scrape phases


class SloBroken(Exception):
    """More requests missed the SLO than a P99 allows: the probe has failed already."""


@dataclass
class _Misses:
    slo: Slo
    allowed: int  # more misses than this and the P99 cannot meet the SLO
    ttft: int = 0
    tpot: int = 0


class _FleetSink(_Sink):
    """Records timings, tells the replica when its request is done (the balancer's
    outstanding count) and, in a capacity probe, counts SLO misses."""

    __slots__ = ("replica", "misses", "prompt_left", "tokens_left")

    def __init__(
        self, record: RequestRecord, replica: Replica, misses: _Misses | None, tokens: int
    ) -> None:
        super().__init__(record)
        self.replica = replica
        self.misses = misses
        self.prompt_left = record.prompt_tokens  # until the first token: prefill pending
        self.tokens_left = tokens  # this request's share of replica.remaining_tokens

    def on_event(self, event, state) -> None:
        first = self.record.first_token is None
        super().on_event(event, state)
        done = len(event.token_ids) + (self.prompt_left if event.token_ids else 0)
        if event.token_ids:
            self.prompt_left = 0
        if event.finished:
            self.replica.outstanding -= 1
            done = self.tokens_left  # ended early or not: nothing of it is left
        done = min(done, self.tokens_left)
        self.tokens_left -= done
        self.replica.remaining_tokens -= done
        m = self.misses
        if m is None:
            return
        rec = self.record
        if first and rec.ttft is not None and rec.ttft > m.slo.ttft_s:
            m.ttft += 1
        if event.finished and (rec.tpot or 0.0) > m.slo.tpot_s:
            m.tpot += 1
        if m.ttft > m.allowed or m.tpot > m.allowed:
            raise SloBroken


@dataclass
class _PlacementStats:
    """How a router placed arrivals, for telling herding from balance:
    - same_replica_in_burst: of the arrivals within one scrape interval of the previous
      one, the share sent to the same replica as it (1/N for a uniform random choice,
      0 for round-robin; near 1 when every arrival in an interval sees one stale scrape);
    - excess_in_flight_mean: requests in flight on the chosen replica minus the fewest
      on any replica, at each arrival (0 for least-requests)."""

    interval_s: float
    arrivals: int = 0
    close: int = 0
    close_same: int = 0
    excess_sum: int = 0
    _last: tuple[float, int] | None = None

    def add(self, t: float, k: int, in_flight: list[int]) -> None:
        self.arrivals += 1
        self.excess_sum += in_flight[k] - min(in_flight)
        if self._last is not None and t - self._last[0] < self.interval_s:
            self.close += 1
            self.close_same += k == self._last[1]
        self._last = (t, k)

    def summary(self) -> dict:
        return {
            "same_replica_in_burst": self.close_same / self.close if self.close else math.nan,
            "excess_in_flight_mean": self.excess_sum / self.arrivals if self.arrivals else 0.0,
        }


def run_fleet(
    workload: Workload,
    cfg: FleetConfig,
    *,
    stop_on_slo_miss: bool = False,
    max_wall_s: float = 900.0,
) -> dict:
    """Serve every request of `workload`; return the summary row (bench metrics plus
    per-replica request counts). With `stop_on_slo_miss`, raise SloBroken as soon as
    more than 1 % (+1) of the requests have missed a P99 SLO: a capacity probe that
    has failed need not run an overloaded fleet to the end."""
    if cfg.replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {cfg.replicas}")
    if cfg.scrape.interval_s <= 0:
        raise ValueError(f"scrape interval must be > 0 s, got {cfg.scrape.interval_s}")
    wall0 = time.monotonic()
    params = {"tpot_sla_ms": cfg.slo.tpot_s * 1000.0, **dict(cfg.policy.params)}
    replicas = [
        Replica(
            k,
            cfg.profile,
            cfg.policy,
            max_batch_size=cfg.policy.max_batch_size or cfg.max_batch_size,
            controller_params=params,
        )
        for k in range(cfg.replicas)
    ]
    router = make_router(cfg.router, staleness_s=cfg.scrape.staleness_s, seed=cfg.seed)
    requests = workload.requests()
    records = [RequestRecord(arrival=r.arrival_time, prompt_tokens=r.prompt_len) for r in requests]
    misses = _Misses(cfg.slo, len(requests) // 100 + 1) if stop_on_slo_miss else None
    routed = [0] * cfg.replicas
    placement = _PlacementStats(cfg.scrape.interval_s)
    clock = ScrapeClock(replicas, cfg.scrape, cfg.seed) if router.uses_scrapes else None
    scrapes: list[ReplicaMetrics | None] = clock.views if clock else [None] * cfg.replicas
    i, n = 0, len(requests)

    def scrape_until(t: float) -> None:
        if clock is not None:
            clock.advance(t)

    while True:
        t_arrival = requests[i].arrival_time if i < n else math.inf
        busy = [r for r in replicas if r.busy]
        lagging = min(busy, key=Replica.now) if busy else None
        t_busy = lagging.now() if lagging is not None else math.inf
        if t_arrival == math.inf and lagging is None:
            break
        if t_arrival <= t_busy:
            scrape_until(t_arrival)
            k = router.pick(replicas, scrapes, t_arrival)
            placement.add(t_arrival, k, [r.outstanding for r in replicas])
            sink = _FleetSink(records[i], replicas[k], misses, request_tokens(requests[i]))
            replicas[k].route(requests[i], sink)
            routed[k] += 1
            i += 1
            continue
        assert lagging is not None  # t_busy is finite
        scrape_until(t_busy)
        stepped = lagging.run_pass()
        if not stepped and lagging.busy:
            # Nothing ran and nothing new can arrive for it before the others move on:
            # only a controller that admits nothing gets here.
            if not lagging.core.running and len(lagging.core.gate):
                raise RuntimeError(
                    f"replica {lagging.index}: {len(lagging.core.gate)} requests wait with "
                    f"an idle engine and limit {lagging.controller.limit}: the policy stalled"
                )
        if time.monotonic() - wall0 > max_wall_s:
            raise RuntimeError(f"fleet run exceeded {max_wall_s:.0f} s wall")
    row = {
        "replicas": cfg.replicas,
        "router": cfg.router,
        "policy": cfg.policy.name,
        "profile": cfg.profile,
        "workload": workload.name,
    }
    row.update(summarize(records, None, cfg.slo))
    row["routed_per_replica"] = routed
    row.update(placement.summary())
    row.update(router_stats(router))
    row["paused"] = sum(r.core.counters.paused_total for r in replicas)
    row["kv_blocks_used_at_end"] = sum(r.engine.blocks.used_blocks for r in replicas)
    row["tokens_left_at_end"] = sum(r.remaining_tokens for r in replicas)
    row["sim_wall_s"] = round(time.monotonic() - wall0, 3)
    return row

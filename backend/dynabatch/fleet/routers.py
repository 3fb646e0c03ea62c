"""Routers in front of the fleet: what a Service, a load balancer and the inference
gateway's endpoint picker would do with the same stream of requests.

- `round-robin`: a Kubernetes Service / plain proxy.
- `least-requests`: a load balancer counting the requests it has outstanding per pod.
- `gateway`: the Gateway API Inference Extension / llm-d endpoint picker with its queue
  and KV-utilisation scorers, fed by periodic scrapes of each pod's /metrics (for engine
  type `triton-tensorrt-llm`: `nv_trt_llm_request_metrics{request_type="waiting"}` and
  `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}`). A pod whose last
  scrape is older than the staleness threshold scores as saturated. Highest weighted
  score wins; ties are broken at random, as the max-score picker does.
- `gateway-headroom`: the same plus a scorer on dynabatch's headroom: 1 when
  `dynabatch_batch_limit` exceeds the running plus waiting requests (the request would
  be admitted at once), else 0; scraped the same way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from .replica import Replica, ReplicaMetrics

ROUTERS = ("round-robin", "least-requests", "gateway", "gateway-headroom")


@dataclass(frozen=True)
class ScrapeConfig:
    interval_s: float = 0.05  # the endpoint picker refreshes pod metrics every 50 ms
    staleness_s: float = 0.2  # older metrics count as saturated (llm-d: 200 ms)


class RoundRobin:
    name = "round-robin"
    uses_scrapes = False

    def __init__(self) -> None:
        self._next = 0

    def pick(self, replicas: Sequence[Replica], scrapes, now: float) -> int:
        k = self._next % len(replicas)
        self._next += 1
        return k


class LeastRequests:
    """Fewest outstanding requests, known exactly by the balancer itself; ties rotate."""

    name = "least-requests"
    uses_scrapes = False

    def __init__(self) -> None:
        self._next = 0

    def pick(self, replicas: Sequence[Replica], scrapes, now: float) -> int:
        n = len(replicas)
        start = self._next % n
        self._next += 1
        order = [(start + j) % n for j in range(n)]
        return min(order, key=lambda k: replicas[k].outstanding)


def min_max_scores(values: Sequence[float]) -> list[float]:
    """The queue scorer's normalisation: 1 for the smallest value, 0 for the largest,
    linear between; all 1 when every pod has the same value."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return [1.0] * len(values)
    return [(hi - v) / (hi - lo) for v in values]


class GatewayRouter:
    """Endpoint-picker scoring over scraped metrics (see module doc)."""

    uses_scrapes = True

    def __init__(
        self,
        *,
        headroom: bool = False,
        queue_weight: float = 1.0,
        kv_weight: float = 1.0,
        headroom_weight: float = 1.0,
        staleness_s: float = ScrapeConfig.staleness_s,
        seed: int = 0,
    ) -> None:
        self.name = "gateway-headroom" if headroom else "gateway"
        self.headroom = headroom
        self.queue_weight, self.kv_weight, self.headroom_weight = (
            queue_weight,
            kv_weight,
            headroom_weight,
        )
        self.staleness_s = staleness_s
        self._rng = random.Random(seed)

    def scores(self, scrapes: Sequence[ReplicaMetrics | None], now: float) -> list[float]:
        fresh = [m is not None and now - m.scraped_at <= self.staleness_s for m in scrapes]
        live = [m for m, ok in zip(scrapes, fresh) if ok and m is not None]
        if not live:
            return [0.0] * len(scrapes)
        queue = min_max_scores([m.waiting for m in live])
        total = [
            self.queue_weight * q + self.kv_weight * (1.0 - m.kv_fraction)
            for q, m in zip(queue, live)
        ]
        if self.headroom:
            # Whether dynabatch's own limit admits the request at once. Not the size of the
            # headroom: an idle replica's adaptive limit is low until load raises it, so
            # "most free slots" would starve idle replicas.
            total = [t + self.headroom_weight * (m.headroom > 0) for t, m in zip(total, live)]
        it = iter(total)
        return [next(it) if ok else 0.0 for ok in fresh]  # stale: saturated, lowest score

    def pick(self, replicas: Sequence[Replica], scrapes, now: float) -> int:
        scores = self.scores(scrapes, now)
        best = max(scores)
        return self._rng.choice([k for k, s in enumerate(scores) if s == best])


def make_router(name: str, *, staleness_s: float = ScrapeConfig.staleness_s, seed: int = 0):
    if name == "round-robin":
        return RoundRobin()
    if name == "least-requests":
        return LeastRequests()
    if name in ("gateway", "gateway-headroom"):
        return GatewayRouter(
            headroom=name == "gateway-headroom", staleness_s=staleness_s, seed=seed
        )
    raise ValueError(f"router must be one of {', '.join(ROUTERS)}; got {name!r}")

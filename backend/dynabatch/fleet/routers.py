"""Routers in front of the fleet: what a Service, a load balancer and the inference
gateway's endpoint picker would do with the same stream of requests.

- `round-robin`: a Kubernetes Service / plain proxy.
- `least-requests`: a load balancer counting the requests it has outstanding per pod.
- `gateway`: the endpoint picker's default scheduling profile (llm-d-inference-scheduler,
  `pkg/epp/config/loader/defaults.go`: `queue-scorer` and `kv-cache-utilization-scorer`
  at equal weight, plus the prefix-cache scorer, which scores every pod alike here as
  nothing shares a prefix; `max-score-picker`), fed by periodic scrapes of each pod's
  /metrics (for engine type `triton-tensorrt-llm`:
  `nv_trt_llm_request_metrics{request_type="waiting"}` and
  `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}`). A pod whose last
  scrape is older than the staleness threshold is left out while any pod is fresh (the
  utilization detector's filter). The default profile counts none of the requests the
  picker itself sent since a scrape, so a burst inside one scrape interval all goes to
  the pod that looked best at that scrape (the detector's README calls it the
  "thundering herd").
- `gateway-active`: the same plus llm-d's `active-request-scorer`, which scores pods by
  the requests the picker has in flight on them (counted at dispatch and at the end of
  the response by the `inflight-load-producer`, so never stale), at equal weight.
- `gateway-headroom` (ours, not a scorer the gateway ships): `gateway` plus a scorer on
  dynabatch's headroom: 1 when `dynabatch_batch_limit` exceeds the running plus waiting
  requests (the request would be admitted at once) less the requests the picker has
  sent to the pod since its last scrape, else 0; scraped the same way.
- `gateway-active-headroom` (ours): `gateway-active` plus the headroom scorer.
- `oracle` (a reference, not a deployable router): knows every replica's true state at
  each arrival and every request's true output length; sends the request where the
  fewest tokens are still to be processed (join the shortest remaining work).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .replica import Replica, ReplicaMetrics
from .scrape import ScrapeConfig

ROUTERS = (
    "round-robin",
    "least-requests",
    "gateway",
    "gateway-active",
    "gateway-headroom",
    "gateway-active-headroom",
    "oracle",
)


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
    """The queue scorer's normalisation (`scorer/queuedepth/queue.go`): 1 for the smallest
    value, 0 for the largest, linear between; all 1 when every pod has the same value."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return [1.0] * len(values)
    return [(hi - v) / (hi - lo) for v in values]


def active_request_scores(counts: Sequence[int]) -> list[float]:
    """llm-d's active-request-scorer (`scorer/activerequest/active_request.go`, default
    idleThreshold 0, maxBusyScore 1): 1 for a pod with no request in flight, else
    (max - count) / max over the pods' in-flight counts."""
    hi = max(counts)
    return [1.0 if c <= 0 else (hi - c) / hi for c in counts]


class Oracle:
    """Join the shortest remaining work, known exactly: a reference for what placement
    alone can gain, not a router anyone can deploy (it knows true output lengths)."""

    name = "oracle"
    uses_scrapes = False

    def pick(self, replicas: Sequence[Replica], scrapes, now: float) -> int:
        return min(
            range(len(replicas)),
            key=lambda k: (replicas[k].remaining_tokens, replicas[k].outstanding, k),
        )


class GatewayRouter:
    """Endpoint-picker scoring over scraped metrics (see module doc)."""

    uses_scrapes = True

    def __init__(
        self,
        *,
        headroom: bool = False,
        active_requests: bool = False,
        queue_weight: float = 1.0,
        kv_weight: float = 1.0,
        headroom_weight: float = 1.0,
        active_weight: float = 1.0,
        staleness_s: float = ScrapeConfig.staleness_s,
        seed: int = 0,
    ) -> None:
        self.name = (
            "gateway" + ("-active" if active_requests else "") + ("-headroom" if headroom else "")
        )
        self.headroom = headroom
        self.active_requests = active_requests
        self.queue_weight, self.kv_weight, self.headroom_weight, self.active_weight = (
            queue_weight,
            kv_weight,
            headroom_weight,
            active_weight,
        )
        self.staleness_s = staleness_s
        self._rng = random.Random(seed)
        # Per replica: the scrape time the picker last saw, and how many requests it has
        # sent there since (the headroom scorer spends the scraped headroom on them).
        self._seen_scrape: dict[int, float] = {}
        self._sent_since: dict[int, int] = {}
        # Picks where every scraped queue was equal, so the queue scorer gave all pods 1.0
        # and the KV fraction alone (plus the extra scorers) chose: how often the waiting
        # queue, the picker's load signal, says nothing.
        self.picks = 0
        self.picks_with_equal_queues = 0

    def scores(
        self,
        scrapes: Sequence[ReplicaMetrics | None],
        now: float,
        in_flight: Sequence[int] | None = None,
        sent_since_scrape: Sequence[int] | None = None,
    ) -> list[float]:
        """Weighted scores per replica; `in_flight` (the picker's own count of requests it
        sent and has not seen finish) feeds the active-request scorer, `sent_since_scrape`
        the headroom scorer."""
        fresh = [m is not None and now - m.scraped_at <= self.staleness_s for m in scrapes]
        live = [m for m, ok in zip(scrapes, fresh) if ok and m is not None]
        if not live:
            return [0.0] * len(scrapes)
        queue = min_max_scores([m.waiting for m in live])
        total = [
            self.queue_weight * q + self.kv_weight * (1.0 - m.kv_fraction)
            for q, m in zip(queue, live)
        ]
        if self.active_requests:
            if in_flight is None:
                raise ValueError("the active-request scorer needs the in-flight counts")
            counts = [c for c, ok in zip(in_flight, fresh) if ok]
            total = [
                t + self.active_weight * a for t, a in zip(total, active_request_scores(counts))
            ]
        if self.headroom:
            # Whether dynabatch's own limit admits the request at once. Not the size of the
            # headroom: an idle replica's adaptive limit is low until load raises it, so
            # "most free slots" would starve idle replicas.
            # The picker knows what it sent since the scrape: without spending the headroom
            # on those, a burst inside one scrape interval herds onto one replica.
            sent = [c for c, ok in zip(sent_since_scrape or [0] * len(scrapes), fresh) if ok]
            total = [
                t + self.headroom_weight * (m.headroom - c > 0)
                for t, m, c in zip(total, live, sent)
            ]
        it = iter(total)
        return [next(it) if ok else 0.0 for ok in fresh]  # stale: saturated, lowest score

    def pick(self, replicas: Sequence[Replica], scrapes, now: float) -> int:
        in_flight = [r.outstanding for r in replicas] if self.active_requests else None
        sent = None
        if self.headroom:
            for k, m in enumerate(scrapes):
                at = m.scraped_at if m is not None else -1.0
                if self._seen_scrape.get(k) != at:
                    self._seen_scrape[k], self._sent_since[k] = at, 0
            sent = [self._sent_since[k] for k in range(len(scrapes))]
        scores = self.scores(scrapes, now, in_flight, sent)
        self.picks += 1
        self.picks_with_equal_queues += len({m.waiting for m in scrapes if m is not None}) <= 1
        best = max(scores)
        k = self._rng.choice([k for k, s in enumerate(scores) if s == best])
        if self.headroom:
            self._sent_since[k] += 1
        return k


def router_stats(router) -> dict:
    """What a router counted about its own picks (the gateway routers only)."""
    if isinstance(router, GatewayRouter) and router.picks:
        return {"equal_queue_share": router.picks_with_equal_queues / router.picks}
    return {}


def make_router(name: str, *, staleness_s: float = ScrapeConfig.staleness_s, seed: int = 0):
    if name == "round-robin":
        return RoundRobin()
    if name == "least-requests":
        return LeastRequests()
    if name == "oracle":
        return Oracle()
    if name in ("gateway", "gateway-active", "gateway-headroom", "gateway-active-headroom"):
        return GatewayRouter(
            headroom=name.endswith("-headroom"),
            active_requests=name.startswith("gateway-active"),
            staleness_s=staleness_s,
            seed=seed,
        )
    raise ValueError(f"router must be one of {', '.join(ROUTERS)}; got {name!r}")

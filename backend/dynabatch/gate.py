"""AdmissionGate: the model's own bounded queue in front of the engine.

The order of admission comes from a QueueOrder (queue_order.py: fcfs, priority, sjf,
fair); the default is priority first (higher first), then arrival. Requests wait in
one heap per lane (one lane, or one per tenant for `fair`). The order picks the lane;
aging then applies inside it: a request that has waited `aging_s` goes before every
request of its lane that arrived after it (with one lane: before everything that
arrived after it; with `fair`, the virtual token counter alone arbitrates between
tenants, so a flooding tenant's aged backlog cannot push the others aside). Removal (cancel) and
expiry (queue timeout) are lazy: entries are marked dead and skipped on pop, so every
operation stays O(log n) (+ the number of lanes) even with a long queue.

The gate also keeps per-tenant accounting (queued, admitted, tokens, TTFT) for
/metrics: the serving core reports served tokens and finishes back through
`on_tokens` / `on_finish`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

from .queue_order import DEFAULT_TENANT, QueuedRequest, QueueOrder, TenantTable
from .types import GenerationRequest


@dataclass
class TenantStats:
    """One tenant's counters since the model loaded (queued is the live count)."""

    queued: int = 0
    admitted: int = 0
    rejected: int = 0  # refused for the tenant's own queue limit
    input_tokens: int = 0  # prompt tokens of admitted requests
    output_tokens: int = 0  # tokens generated for it
    ttft_sum_s: float = 0.0  # arrival -> first token, summed over first tokens
    ttft_count: int = 0


def tenant_of(request: GenerationRequest) -> str:
    return request.tenant or DEFAULT_TENANT


class AdmissionGate:
    def __init__(
        self,
        max_queue_size: int = 0,
        queue_timeout_s: float = 0.0,
        order: QueueOrder | None = None,
        *,
        aging_s: float = 0.0,
        tenant_queue_limits: TenantTable | None = None,
    ) -> None:
        """max_queue_size 0 = unbounded; queue_timeout_s 0 = wait forever; aging_s 0 =
        no aging; tenant_queue_limits: per-tenant waiting limit (0 = none)."""
        if max_queue_size < 0 or queue_timeout_s < 0 or aging_s < 0:
            raise ValueError("max_queue_size, queue_timeout_s and aging_s must be >= 0")
        self.max_queue_size = max_queue_size
        self.queue_timeout_s = queue_timeout_s
        self.order = order or QueueOrder()
        self.aging_s = aging_s
        self.tenant_queue_limits = tenant_queue_limits or TenantTable()
        self._lanes: dict[str, list[QueuedRequest]] = {}
        self._by_arrival: deque[QueuedRequest] = deque()  # FIFO: expiry, oldest wait
        self._lane_arrival: dict[str, deque[QueuedRequest]] = {}  # FIFO per lane: aging
        self._by_id: dict[int, QueuedRequest] = {}
        self._seq = itertools.count()
        self.tenants: dict[str, TenantStats] = {}
        self._running_tenant: dict[int, str] = {}  # admitted request id -> tenant
        self.admitted = 0
        self.admitted_after_wait = 0  # could not go to the engine the moment they arrived
        self.admission_wait_sum_s = 0.0

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, request_id: int) -> bool:
        return request_id in self._by_id

    def offer(self, request: GenerationRequest, sink: Any, now: float) -> str | None:
        """Queue a request; return None, or the reason it was refused."""
        if request.request_id in self._by_id:
            return f"request id {request.request_id} is already queued"
        tenant = tenant_of(request)
        stats = self.tenants.setdefault(tenant, TenantStats())
        limit = int(self.tenant_queue_limits.get(tenant))
        if limit and stats.queued >= limit:
            stats.rejected += 1
            return (
                f"queue full for tenant '{tenant}': {stats.queued} of its requests waiting "
                f"(tenant_max_queue_size={limit}); retry later"
            )
        if self.max_queue_size and len(self._by_id) >= self.max_queue_size:
            return (
                f"queue full: {len(self._by_id)} requests waiting "
                f"(max_queue_size={self.max_queue_size}); retry later"
            )
        item = QueuedRequest(request=request, sink=sink, enqueue_time=now, seq=next(self._seq))
        item.sort_key = self.order.key(item)
        lane = self.order.lane(item)
        if stats.queued == 0:
            self.order.on_queued(tenant, [t for t, s in self.tenants.items() if s.queued])
        stats.queued += 1
        heapq.heappush(self._lanes.setdefault(lane, []), item)
        if self.aging_s:  # only aging reads the per-lane arrival order
            self._lane_arrival.setdefault(lane, deque()).append(item)
        self._by_arrival.append(item)
        self._by_id[request.request_id] = item
        return None

    def peek(self, now: float | None = None) -> QueuedRequest | None:
        """The request admitted next: in the lane the order picks, the oldest if it has
        aged (when `now` is given), else the lane's head."""
        heads: dict[str, QueuedRequest] = {}
        for lane, heap in list(self._lanes.items()):
            while heap and not heap[0].alive:
                heapq.heappop(heap)
            if heap:
                heads[lane] = heap[0]
            else:
                del self._lanes[lane]
                self._lane_arrival.pop(lane, None)
        if not heads:
            return None
        lane = self.order.choose(heads)
        if now is not None and self.aging_s:
            arrivals = self._lane_arrival[lane]
            while not arrivals[0].alive:  # the lane holds a live item: this ends
                arrivals.popleft()
            if now - arrivals[0].enqueue_time >= self.aging_s:
                return arrivals[0]
        return heads[lane]

    def head(self, k: int = 4, now: float | None = None) -> list[QueuedRequest]:
        """About the first k requests in admission order, cheaply: the k smallest of a
        binary heap lie in its top k levels, so only those 2^k - 1 slots are read
        (entries removed but not yet popped make the answer approximate, never wrong
        in order). With several lanes (fair), the lanes' tops merged by key. With `now`,
        the first is the one `admit(now)` takes (aging included): the controller sizes
        the next admission (KV fit, prefill allowance) on it, so it must be the request
        that actually goes next, not the one the order would pick without aging."""
        first = self.peek(now)
        top = [
            item
            for heap in self._lanes.values()
            for item in heap[: (1 << k) - 1]
            if item.alive and item is not first
        ]
        rest = heapq.nsmallest(k - 1 if first else k, top)
        return ([first] if first else []) + rest

    def pop(self) -> QueuedRequest | None:
        """Remove and return the next request in order (no aging, no accounting: for
        draining the queue)."""
        item = self.peek()
        if item is not None:
            self._kill(item)
        return item

    def admit(self, now: float) -> QueuedRequest | None:
        """Remove and return the request to admit now (aging applies), and account it."""
        item = self.peek(now)
        if item is None:
            return None
        self._kill(item)
        wait = now - item.enqueue_time
        self.admitted += 1
        if wait > 0:
            self.admitted_after_wait += 1
            self.admission_wait_sum_s += wait
        tenant = tenant_of(item.request)
        stats = self.tenants[tenant]
        stats.admitted += 1
        stats.input_tokens += item.request.prompt_len
        self._running_tenant[item.request.request_id] = tenant
        self.order.on_admit(item)
        return item

    def on_tokens(self, request_id: int, n: int, ttft_s: float | None = None) -> None:
        """An admitted request received n tokens (ttft_s with its first ones)."""
        tenant = self._running_tenant.get(request_id)
        if tenant is None:
            return
        stats = self.tenants[tenant]
        stats.output_tokens += n
        if ttft_s is not None:
            stats.ttft_sum_s += ttft_s
            stats.ttft_count += 1
        self.order.on_tokens(tenant, n)

    def on_finish(self, request_id: int, generated: int, prompt_len: int = 0) -> None:
        """An admitted request ended (feeds the SJF length model)."""
        self._running_tenant.pop(request_id, None)
        self.order.on_finish(generated, prompt_len)

    def remove(self, request_id: int) -> QueuedRequest | None:
        item = self._by_id.get(request_id)
        if item is not None:
            self._kill(item)
        return item

    def expire(self, now: float) -> list[QueuedRequest]:
        """Remove and return the requests that waited longer than queue_timeout_s."""
        expired: list[QueuedRequest] = []
        if not self.queue_timeout_s:
            return expired
        while self._by_arrival:
            head = self._by_arrival[0]
            if not head.alive:
                self._by_arrival.popleft()
            elif now - head.enqueue_time > self.queue_timeout_s:
                self._by_arrival.popleft()
                self._kill(head)
                expired.append(head)
            else:
                break
        return expired

    def oldest_wait(self, now: float) -> float:
        oldest = self._oldest()
        return now - oldest.enqueue_time if oldest is not None else 0.0

    def _oldest(self) -> QueuedRequest | None:
        while self._by_arrival and not self._by_arrival[0].alive:
            self._by_arrival.popleft()
        return self._by_arrival[0] if self._by_arrival else None

    def _kill(self, item: QueuedRequest) -> None:
        if item.alive:
            self.tenants[tenant_of(item.request)].queued -= 1
        item.alive = False
        self._by_id.pop(item.request.request_id, None)

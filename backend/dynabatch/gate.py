"""AdmissionGate: the model's own bounded queue in front of the engine.

Ordering is priority first (higher first), then arrival (FCFS). Removal (cancel)
and expiry (queue timeout) are lazy: entries are marked dead and skipped on pop, so
every operation stays O(log n) even with a long queue.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .types import GenerationRequest


@dataclass(order=True)
class QueuedRequest:
    sort_key: tuple = field(init=False, repr=False)
    request: GenerationRequest = field(compare=False)
    sink: Any = field(compare=False)
    enqueue_time: float = field(compare=False)
    seq: int = field(compare=False, default=0)
    alive: bool = field(compare=False, default=True)

    def __post_init__(self) -> None:
        self.sort_key = (-self.request.priority, self.seq)


class AdmissionGate:
    def __init__(self, max_queue_size: int = 0, queue_timeout_s: float = 0.0) -> None:
        """max_queue_size 0 = unbounded; queue_timeout_s 0 = wait forever."""
        if max_queue_size < 0 or queue_timeout_s < 0:
            raise ValueError("max_queue_size and queue_timeout_s must be >= 0")
        self.max_queue_size = max_queue_size
        self.queue_timeout_s = queue_timeout_s
        self._heap: list[QueuedRequest] = []
        self._by_arrival: deque[QueuedRequest] = deque()  # FIFO for expiry and oldest wait
        self._by_id: dict[int, QueuedRequest] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, request_id: int) -> bool:
        return request_id in self._by_id

    def offer(self, request: GenerationRequest, sink: Any, now: float) -> str | None:
        """Queue a request; return None, or the reason it was refused."""
        if request.request_id in self._by_id:
            return f"request id {request.request_id} is already queued"
        if self.max_queue_size and len(self._by_id) >= self.max_queue_size:
            return (
                f"queue full: {len(self._by_id)} requests waiting "
                f"(max_queue_size={self.max_queue_size}); retry later"
            )
        item = QueuedRequest(request=request, sink=sink, enqueue_time=now, seq=next(self._seq))
        heapq.heappush(self._heap, item)
        self._by_arrival.append(item)
        self._by_id[request.request_id] = item
        return None

    def peek(self) -> QueuedRequest | None:
        while self._heap and not self._heap[0].alive:
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else None

    def head(self, k: int = 4) -> list[QueuedRequest]:
        """About the first k requests in admission order, cheaply: the k smallest of a
        binary heap lie in its top k levels, so only those 2^k - 1 slots are read
        (entries removed but not yet popped make the answer approximate, never wrong
        in order)."""
        self.peek()
        top = [item for item in self._heap[: (1 << k) - 1] if item.alive]
        return heapq.nsmallest(k, top)

    def pop(self) -> QueuedRequest | None:
        item = self.peek()
        if item is not None:
            heapq.heappop(self._heap)
            self._kill(item)
        return item

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
        while self._by_arrival and not self._by_arrival[0].alive:
            self._by_arrival.popleft()
        return now - self._by_arrival[0].enqueue_time if self._by_arrival else 0.0

    def _kill(self, item: QueuedRequest) -> None:
        item.alive = False
        self._by_id.pop(item.request.request_id, None)

"""Small pieces the policies share: clamping, per-iteration samples, a sliding window
for TPOT percentiles, and an HPA-style stabiliser for the published limit."""

from __future__ import annotations

import math
from collections import deque

from ..types import IterationStats
from .base import LimitDecision


def clamp(value: float, lower: int, upper: int) -> int:
    """floor(value) clamped to [lower, upper]; inf/NaN-safe."""
    if value != value or value >= upper:  # NaN or too big
        return upper
    if value <= lower:
        return lower
    return int(math.floor(value))


def tpot_sample_ms(stats: IterationStats) -> float | None:
    """The time per output token of every generating request in this step.

    One step emits one token per generation request, so the step latency IS their
    TPOT sample; steps without generation requests (pure prefill) give none.
    """
    return stats.iter_latency_ms if stats.num_gen_requests > 0 else None


def batch_sample(stats: IterationStats) -> int:
    """Requests the engine actually ran in this step (the batch size behind the latency)."""
    return stats.num_scheduled_requests or stats.num_active_requests


class Ewma:
    """Exponentially weighted mean; the first sample initialises it."""

    __slots__ = ("weight", "value")

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.value: float | None = None

    def add(self, x: float) -> float:
        v = self.value
        self.value = x if v is None else v + self.weight * (x - v)
        return self.value


class SampleWindow:
    """The last `size` samples: mean and std in O(1), exact percentile on demand (sorts)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._buf: deque[float] = deque()
        self._sum = 0.0
        self._sq = 0.0

    def __len__(self) -> int:
        return len(self._buf)

    def add(self, x: float) -> None:
        buf = self._buf
        if len(buf) == self.size:
            old = buf.popleft()
            self._sum -= old
            self._sq -= old * old
        buf.append(x)
        self._sum += x
        self._sq += x * x

    @property
    def mean(self) -> float:
        return self._sum / len(self._buf) if self._buf else 0.0

    @property
    def std(self) -> float:
        n = len(self._buf)
        if n < 2:
            return 0.0
        mean = self._sum / n
        return math.sqrt(max(self._sq / n - mean * mean, 0.0))

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile, q in [0, 100]."""
        if not self._buf:
            return 0.0
        ordered = sorted(self._buf)
        rank = max(1, math.ceil(q / 100.0 * len(ordered)))
        return ordered[rank - 1]


class _WindowExtreme:
    """Sliding-window minimum (or maximum) over time, O(1) amortised (monotonic deque)."""

    def __init__(self, window_s: float, largest: bool) -> None:
        self.window_s = window_s
        self.sign = -1 if largest else 1
        self._q: deque[tuple[float, int]] = deque()

    def add(self, value: int, now: float) -> int:
        q, key = self._q, self.sign * value
        while q and self.sign * q[-1][1] >= key:
            q.pop()
        q.append((now, value))
        while q[0][0] < now - self.window_s:
            q.popleft()
        return q[0][1]


class Stabilizer:
    """Turns a raw target into a published limit that does not chatter (HPA style).

    - a raise goes only as far as the *lowest* target of the last `window_s` seconds,
      a cut only as far as the *highest* (a change must be recommended for a window;
      hard signals such as an eviction bypass this through `force`);
    - tolerance band: a change within ±`tolerance` (fraction) of the current limit, or
      of one request, is ignored.
    """

    def __init__(self, initial: int, tolerance: float, window_s: float) -> None:
        self.limit = initial
        self.tolerance = tolerance
        self.window_s = window_s
        self._low = _WindowExtreme(window_s, largest=False)
        self._high = _WindowExtreme(window_s, largest=True)

    def update(self, target: int, now: float) -> int:
        low, high = self._low.add(target, now), self._high.add(target, now)
        limit = self.limit
        band = max(1.0, self.tolerance * limit)
        if low > limit and low - limit > band:
            self.limit = low
        elif high < limit and limit - high > band:
            self.limit = high
        return self.limit

    def force(self, limit: int) -> None:
        """Set the limit outright (hard signals bypass the window and the band)."""
        self.limit = limit


class SingleBound:
    """The shared tail of the one-bound policies: `b` is the limit, `bound` names it
    in `decision.bounds` (a metrics label), and finished requests teach them nothing."""

    bound = "limit"
    b: int

    def on_request_finish(self, state) -> None:
        pass

    @property
    def limit(self) -> int:
        return self.b

    @property
    def decision(self) -> LimitDecision:
        return LimitDecision(self.b, {self.bound: float(self.b)}, self.bound)

"""The KV capacity a controller works with: the latest one the engine reported.

An engine may not know its pool before its first iteration (TensorRT-LLM sizes it from
free GPU memory), so capacity is an explicit "unknown" (None) until an IterationStats
carries it, and it follows every later report. Until it is known a policy that needs
it holds `lower` (B_min, at least one request: that request's first iteration tells the
capacity) and names CAPACITY_UNKNOWN as the reason of its decision.
"""

from __future__ import annotations

from ..types import IterationStats, KvCapacity
from .base import LimitDecision

CAPACITY_UNKNOWN = "capacity_unknown"


class CapacityTracker:
    """Remembers the latest capacity seen in stats (None until one carries it)."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: KvCapacity | None = None

    def refresh(self, stats: IterationStats) -> KvCapacity | None:
        cap = stats.kv_capacity
        if cap is not None:
            self.current = cap
        return self.current


def unknown_decision(lower: int) -> LimitDecision:
    """The decision of a policy that holds `lower` because capacity is not known yet."""
    return LimitDecision(lower, {CAPACITY_UNKNOWN: float(lower)}, CAPACITY_UNKNOWN)

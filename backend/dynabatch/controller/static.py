"""`static`: a fixed in-flight limit, the baseline every other policy is measured against."""

from __future__ import annotations

from ..types import ControlInput, RequestState
from .base import LimitDecision


class StaticController:
    name = "static"

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"static limit must be >= 1, got {limit}")
        self._decision = LimitDecision(limit, {"static": float(limit)}, "static")

    def update(self, sample: ControlInput) -> int:
        return self._decision.limit

    def on_request_finish(self, state: RequestState) -> None:
        pass

    @property
    def limit(self) -> int:
        return self._decision.limit

    @property
    def decision(self) -> LimitDecision:
        return self._decision

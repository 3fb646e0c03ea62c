"""`static`: a fixed in-flight limit, the baseline every other policy is measured against."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..params import ConfigError
from ..types import ControlInput, RequestState
from .base import LimitDecision
from .registry import Bounds, params_of


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


@params_of("static_batch_size")
def build(p: Mapping[str, Any], b: Bounds) -> StaticController:
    size = p["static_batch_size"] or b.upper
    if size > b.max_batch_size:
        raise ConfigError(
            "static_batch_size", size, f"at most the engine's max_batch_size ({b.max_batch_size})"
        )
    return StaticController(size)

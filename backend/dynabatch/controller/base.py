"""The controller contract: one call feeds a sample, one property reads the limit.

Controllers are pure: no I/O, no threads, no clock of their own. Time comes in with
`ControlInput.stats.timestamp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from ..types import ControlInput, RequestState

# Prefill pacing: a controller may publish `prefill_tokens_per_step`, the prompt tokens
# the serving core may admit per engine iteration on average (core.PrefillCredit keeps
# the account). A controller without it, or with this value, is not paced.
UNPACED = math.inf


@dataclass(frozen=True)
class LimitDecision:
    """The current in-flight limit and why: each component's bound (for metrics/logs)."""

    limit: int
    bounds: dict[str, float] = field(default_factory=dict)  # e.g. {"memory": 84, "sla": 120}
    reason: str = ""  # name of the binding component


class Controller(Protocol):
    name: str

    def update(self, sample: ControlInput) -> int:
        """Feed one iteration; return the new in-flight limit."""

    def on_request_finish(self, state: RequestState) -> None:
        """A request left the engine (finished, cancelled or failed)."""

    @property
    def limit(self) -> int: ...

    @property
    def decision(self) -> LimitDecision: ...

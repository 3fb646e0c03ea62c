"""`adaptive` (default): memory bound from a learned final-footprint model, SLA bound
from an online step-latency fit, eviction as a hard signal, HPA-style stabilisation.
This module composes them: the memory side (slot model, per-admission forecast, eviction
back-off) is memory_bound.py, the SLA side (with the burst allowance and prefill pacing)
sla_bound.py.

The equations are in docs/CONTROLLER.md. Every update is O(1) (the running map is read
only during the cold start): requests feed the length model and the TPOT percentile
once, when they finish.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..types import ControlInput, FinishReason, RequestState
from .base import UNPACED, LimitDecision
from .common import Stabilizer, clamp
from .kv_capacity import CAPACITY_UNKNOWN, CapacityTracker
from .length_model import LengthModel
from .memory_bound import MemoryBound
from .registry import Bounds, params_of
from .sla_bound import SlaBound

# The SLA bound steps aside for TTFT once the queue's oldest request has waited this part
# of the TTFT SLO, the point where the memory forecast's margin is gone too
# (memory_bound._RISK_TTFT_FRACTION). At the whole TTFT (before) the head had already
# missed, and the queue behind it, held at the TPOT bound through a burst, missed with
# it: on llama-3-8b-h100 at 0.5 s / 30 ms P99 TTFT read 0.58 s where no cap at all read
# 0.25 s at the same P99 TPOT (29 ms). docs/CONTROLLER.md §3.
_TTFT_STEP_ASIDE_FRACTION = 0.5
_USABLE = (FinishReason.LENGTH, FinishReason.EOS, FinishReason.END_ID, FinishReason.STOPPED)


class AdaptiveController:
    name = "adaptive"
    wants_waiting_head = True  # admissions are checked against the actual next requests

    def __init__(
        self,
        *,
        lower: int,
        upper: int,
        kv_target_fraction: float,
        kv_overflow_prob: float,
        length_window: int,
        tpot_sla_ms: float,
        tpot_percentile: float,
        pause_backoff: float,
        pause_recovery_s: float,
        kv_probe_max: float,
        limit_tolerance: float,
        stabilization_s: float,
        ttft_sla_s: float,
        forecast_overflow_prob: float = 0.2,
        prefill_pacing: bool = True,
    ) -> None:
        # KV pool: the engine's latest report (kv_capacity.py); None while unknown
        self.capacity = CapacityTracker()
        self.lower, self.upper = lower, upper
        self.lengths = LengthModel(length_window)
        self.ttft_s = ttft_sla_s
        self.ttft_pressure = False
        self.stabilization_s = stabilization_s
        self.stabilizer = Stabilizer(lower, limit_tolerance, stabilization_s)
        self._limit = lower
        # memory side (memory_bound.py): the slot model's bound, the per-admission
        # forecast, and the eviction back-off on both budgets
        self.memory = MemoryBound(
            lower=lower,
            kv_target_fraction=kv_target_fraction,
            kv_overflow_prob=kv_overflow_prob,
            forecast_overflow_prob=forecast_overflow_prob,
            pause_backoff=pause_backoff,
            pause_recovery_s=pause_recovery_s,
            kv_probe_max=kv_probe_max,
            ttft_sla_s=ttft_sla_s,
            lengths=self.lengths,
        )
        # SLA side (sla_bound.py): the TPOT spread, the step-latency fit, the burst
        # allowance and the prefill budget
        self.sla = SlaBound(
            lower=lower,
            upper=upper,
            tpot_sla_ms=tpot_sla_ms,
            tpot_percentile=tpot_percentile,
            stabilization_s=stabilization_s,
            ttft_sla_s=ttft_sla_s,
            lengths=self.lengths,
        )
        self.raw = lower  # the composed bound of the last update, before stabilising
        self._reason = CAPACITY_UNKNOWN  # until a stats sample carries the KV pool
        # prefill pacing: prompt tokens the core may admit per iteration (base.UNPACED = no
        # pacing), from the step-latency fit (a, b, c) of the last generation step
        self.pacing = prefill_pacing
        self.prefill_tokens_per_step = UNPACED

    # ---- feedback -------------------------------------------------------------
    def on_request_finish(self, state: RequestState) -> None:
        if state.finish_reason not in _USABLE or state.generated < 1:
            return
        self.memory.on_finish(state.prompt_len, state.generated)
        self.sla.on_finish(state)

    def update(self, sample: ControlInput) -> int:
        stats = sample.stats
        cap = self.capacity.refresh(stats)
        if cap is None:  # hold B_min until the engine tells its pool
            self._reason = CAPACITY_UNKNOWN
            return self._limit
        now = stats.timestamp
        paused = stats.num_new_pauses > 0
        # the memory bound follows the pool the engine reports in this iteration: the
        # forecast once it is in use (memory.forecasting), the slot model's bound before
        b_memory = self.memory.update(sample, cap, paused)
        b_sla = self.sla.update(stats, now)
        # TTFT in view: once the queue's oldest request has waited half the TTFT target,
        # the requests behind it are about to miss their SLO; cutting the batch for TPOT
        # would only lengthen the queue, so the SLA bound steps aside until the queue
        # catches up. (Stepping aside there with the lift forced through the stabiliser
        # lost 5-18 % of capacity on llama-3-8b-h100 under a 12 ms TPOT with a 2 s TTFT:
        # the cut is what holds TPOT through a burst. The lift is forced only where the
        # window outlasts the TTFT SLO, below; docs/CONTROLLER.md §3.)
        self.ttft_pressure = (
            bool(self.ttft_s) and sample.oldest_wait_s > _TTFT_STEP_ASIDE_FRACTION * self.ttft_s
        )
        if self.pacing:
            self.prefill_tokens_per_step = self.sla.prefill_budget(sample)
        warm = self.memory.warm
        forecast = self.memory.forecasting
        if forecast:
            # The forecast decides each admission as it comes (no stabilisation: it is a
            # fit test, not a target); the stabiliser only smooths the SLA bound.
            sla = math.inf if self.ttft_pressure else self.sla.enforced()
            self.raw = clamp(sla, self.lower, self.upper)
        else:
            sla = b_memory if self.ttft_pressure else self.sla.enforced()
            self.raw = clamp(min(b_memory, sla), self.lower, self.upper)
        if paused and not forecast or not warm:
            self.stabilizer.force(min(self.raw, self.stabilizer.limit) if paused else self.raw)
        elif (
            self.ttft_pressure
            and self.stabilization_s > self.ttft_s
            and self.raw > self.stabilizer.limit
        ):
            # The SLA bound stepped aside for TTFT, and a raise held for the stabilisation
            # window (2 s) would outlast the TTFT SLO itself (interactive: 0.5 s): the
            # lift takes effect at once, like an eviction's cut. With a TTFT at least as
            # long as the window it waits as before: forcing it there lost 6 % of
            # capacity under a 12 ms TPOT (the cut is what holds P99 TPOT through a
            # burst; docs/CONTROLLER.md §3).
            self.stabilizer.force(self.raw)
        held = self.stabilizer.update(self.raw, now)
        self._limit = clamp(min(b_memory, held), self.lower, self.upper) if forecast else held
        if b_memory <= b_sla:
            self._reason = "memory"
        else:
            self._reason = "ttft" if self.ttft_pressure else "sla"
        return self._limit

    # ---- reads ----------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

    @property
    def b_memory(self) -> float:
        """The memory bound of the last update: the forecast once in use, else the slot
        model's."""
        return self.memory.b_memory

    @property
    def scale(self) -> float:
        """The eviction scale on the slot model's KV budget (AIMD)."""
        return self.memory.scale

    @property
    def forecast_scale(self) -> float:
        """The eviction scale on the forecast's KV budget (AIMD, never above 1)."""
        return self.memory.forecast_scale

    @property
    def total_tokens(self) -> int:
        """The KV pool in tokens the last update sized the memory bound by (0 before)."""
        return self.memory.total_tokens

    @property
    def b_sla(self) -> float:
        """The SLA bound of the last update (never under the floor)."""
        return self.sla.b_sla

    @property
    def spread(self) -> float:
        """k: how far the requests' TPOT percentile sits above the local step latency."""
        return self.sla.spread

    @property
    def decision(self) -> LimitDecision:
        if self._reason == CAPACITY_UNKNOWN:
            return LimitDecision(self._limit, {CAPACITY_UNKNOWN: float(self._limit)}, self._reason)
        return LimitDecision(
            self._limit,
            {
                "memory": _finite(self.b_memory, self.upper),
                # what the SLA side enforces: the bound plus the burst allowance
                "sla": _finite(self.sla.enforced(), self.upper),
            },
            self._reason,
        )


def _finite(value: float, cap: int) -> float:
    return float(cap) if value != value or value > cap else float(math.floor(value))


_ADAPTIVE_PARAMS = (
    "kv_target_fraction",
    "kv_overflow_prob",
    "length_window",
    "tpot_sla_ms",
    "tpot_percentile",
    "pause_backoff",
    "pause_recovery_s",
    "kv_probe_max",
    "limit_tolerance",
    "stabilization_s",
    "ttft_sla_s",
    "forecast_overflow_prob",
    "prefill_pacing",
)


@params_of(*_ADAPTIVE_PARAMS)
def build(p: Mapping[str, Any], b: Bounds) -> AdaptiveController:
    return AdaptiveController(lower=b.lower, upper=b.upper, **{k: p[k] for k in _ADAPTIVE_PARAMS})

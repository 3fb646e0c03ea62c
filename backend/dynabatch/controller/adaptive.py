"""`adaptive` (default): memory bound from a learned final-footprint model, SLA bound
from an online step-latency fit, eviction as a hard signal, HPA-style stabilisation.
This module composes them: the slot model is length_model.py, the forecast
kv_forecast.py, the SLA side (with the burst allowance and prefill pacing) sla_bound.py.

The equations are in docs/CONTROLLER.md. Every update is O(1) (the running map is read
only during the cold start): requests feed the length model and the TPOT percentile
once, when they finish.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np

from ..types import ControlInput, FinishReason, RequestState
from .base import UNPACED, LimitDecision
from .common import Stabilizer, clamp
from .kv_capacity import CAPACITY_UNKNOWN, CapacityTracker
from .kv_forecast import SurvivalTable
from .length_model import LengthModel, slots_that_fit
from .registry import Bounds, params_of
from .sla_bound import SlaBound

_SCALE_MIN = 0.3  # the eviction back-off never drops the KV budget below this
_WARMUP_FINISHED = 8  # finished requests before the length model is trusted
_FORECAST_EVERY = 8  # updates between forecasts while the batch and queue head stand still
# ... and at least one update per this many running requests: a forecast costs O(running)
# (~130 us at 256), and in 16 steps each request grows 16 tokens, less than the horizon
# grid resolves (2, 8, 16, 32, ... steps); a request that leaves still triggers one at once
_FORECAST_RUNNING_PER_UPDATE = 16
_SURVIVAL_EVERY = 16  # finished requests between rebuilds of the survival table
# TTFT in view for memory: the overflow margin of the forecast shrinks linearly with the
# queue head's wait, to none (the mean forecast) once it has waited this part of the TTFT
# SLO. Under max_utilization an overflow pauses the newest request (its work is redone),
# while a request held back past its TTFT is a sure SLO miss. Past the TTFT (overload)
# the full margin is back (_margin_left).
_RISK_TTFT_FRACTION = 0.5
# The SLA bound steps aside for TTFT once the queue's oldest request has waited this part
# of the TTFT SLO, the point where the memory forecast's margin is gone too
# (_RISK_TTFT_FRACTION). At the whole TTFT (before) the head had already missed, and the
# queue behind it, held at the TPOT bound through a burst, missed with it: on
# llama-3-8b-h100 at 0.5 s / 30 ms P99 TTFT read 0.58 s where no cap at all read 0.25 s
# at the same P99 TPOT (29 ms). docs/CONTROLLER.md §3.
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
        # KV pool: the engine's latest report (kv_capacity.py); 0 while unknown
        self.capacity = CapacityTracker()
        self.total_tokens = 0
        self.tokens_per_block = 0
        self.lower, self.upper = lower, upper
        self.kv_fraction = kv_target_fraction
        self.z = NormalDist().inv_cdf(1.0 - kv_overflow_prob)
        self.z_forecast = NormalDist().inv_cdf(1.0 - forecast_overflow_prob)
        self.lengths = LengthModel(length_window)
        self.ttft_s = ttft_sla_s
        self.ttft_pressure = False
        self.stabilization_s = stabilization_s
        self.backoff = pause_backoff
        self.recovery_per_s = 1.0 / pause_recovery_s if pause_recovery_s > 0 else math.inf
        self.stabilizer = Stabilizer(lower, limit_tolerance, stabilization_s)
        self._limit = lower
        # memory: the CLT model is a prior; the eviction signal finds the real edge: the scale on
        # the KV budget grows linearly while no request is evicted (probing above the
        # model up to kv_probe_max) and shrinks multiplicatively on an eviction (AIMD).
        self.scale_max = kv_probe_max
        self.scale = 1.0
        self.forecast_scale = 1.0  # the same AIMD on the forecast's budget, never above 1
        self._last_time: float | None = None
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
        # bounds of the last update
        self.b_memory = float(lower)  # nothing admitted before the first sample
        self.raw = lower
        self._reason = CAPACITY_UNKNOWN  # until a stats sample carries the KV pool
        # memory, per admission: forecast of the cache's peak (kv_forecast.py), used once
        # the serving core shows the queue head; the slot model above is the fallback
        self.survival = SurvivalTable()
        self._survival_age = 0
        self._head_seen = False
        self._forecast_key = 0  # batch size at the last update
        self._forecast_age = _FORECAST_EVERY  # the first update computes one
        self.b_forecast = math.inf
        # prefill pacing: prompt tokens the core may admit per iteration (base.UNPACED = no
        # pacing), from the step-latency fit (a, b, c) of the last generation step
        self.pacing = prefill_pacing
        self.prefill_tokens_per_step = UNPACED

    # ---- feedback -------------------------------------------------------------
    def on_request_finish(self, state: RequestState) -> None:
        if state.finish_reason not in _USABLE or state.generated < 1:
            return
        self.lengths.add(state.prompt_len, state.generated)
        self._survival_age += 1
        if self._survival_age >= _SURVIVAL_EVERY or len(self.lengths) <= 64:
            self._survival_age = 0
            self.survival.rebuild(self.lengths.outputs())
        self.sla.on_finish(state)

    def update(self, sample: ControlInput) -> int:
        stats = sample.stats
        cap = self.capacity.refresh(stats)
        if cap is None:  # hold B_min until the engine tells its pool
            self._reason = CAPACITY_UNKNOWN
            return self._limit
        # the memory bounds below follow the pool the engine reports in this iteration
        self.total_tokens, self.tokens_per_block = cap.total_tokens, cap.tokens_per_block
        now = stats.timestamp
        if self._last_time is not None:
            grow = (now - self._last_time) * self.recovery_per_s
            self.scale = min(self.scale_max, self.scale + grow)
            self.forecast_scale = min(1.0, self.forecast_scale + grow)
        self._last_time = now
        paused = stats.num_new_pauses > 0
        if paused:  # an eviction is a hard signal: the model under-estimated demand
            self.scale = max(_SCALE_MIN, self.scale * self.backoff)
            self.forecast_scale = max(_SCALE_MIN, self.forecast_scale * self.backoff)
        self.b_memory = self._memory_bound(sample)
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
        warm = len(self.lengths) >= _WARMUP_FINISHED
        if sample.waiting_head:
            self._head_seen = True
        forecast = warm and self._head_seen
        if forecast:
            # The forecast decides each admission as it comes (no stabilisation: it is a
            # fit test, not a target); the stabiliser only smooths the SLA bound.
            self.b_forecast = self._forecast_bound(sample, paused)
            self.b_memory = self.b_forecast
            sla = math.inf if self.ttft_pressure else self.sla.enforced()
            self.raw = clamp(sla, self.lower, self.upper)
        else:
            memory = self.b_memory
            sla = memory if self.ttft_pressure else self.sla.enforced()
            self.raw = clamp(min(memory, sla), self.lower, self.upper)
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
        self._limit = (
            clamp(min(self.b_forecast, held), self.lower, self.upper) if forecast else held
        )
        if self.b_memory <= b_sla:
            self._reason = "memory"
        else:
            self._reason = "ttft" if self.ttft_pressure else "sla"
        return self._limit

    def _forecast_bound(self, sample: ControlInput, paused: bool) -> float:
        """Running requests + how many queued ones fit the forecast (kv_forecast.py).

        Only while requests wait (otherwise the limit admits nothing). Recomputed when a
        request left, after an eviction, and every few updates otherwise: requests grow
        one token a step, so the forecast moves slowly, and an admission in between
        keeps the absolute bound (the admitted requests were counted in it)."""
        running, head = sample.running, sample.waiting_head
        n = len(running)
        self._forecast_age += 1
        if not paused and (
            not head
            or (
                n >= self._forecast_key
                and self._forecast_age < max(_FORECAST_EVERY, n // _FORECAST_RUNNING_PER_UPDATE)
            )
        ):
            self._forecast_key = n
            return self.b_forecast
        self._forecast_key, self._forecast_age = n, 0
        half = self.tokens_per_block // 2  # the half-filled last block of each request
        # list comprehensions over one snapshot of the map, then fromiter: 20 % cheaper
        # than generators over the dict (256 running: 26 vs 32 us)
        states = list(running.values())
        gen = np.fromiter([s.generated for s in states], np.int64, n)
        mx = np.fromiter([s.max_new_tokens for s in states], np.int64, n)
        cur = np.fromiter([s.prompt_len for s in states], np.int64, n) + gen + half
        prompts = np.array([p for p, _ in head], dtype=np.int64) + half
        cand_max = np.array([m for _, m in head], dtype=np.int64)
        # block rounding is counted per request above, so the budget is the whole cache
        budget = self.total_tokens * self.forecast_scale
        z = self.z_forecast * self._margin_left(sample.oldest_wait_s)
        k, left = self.survival.fits(cur, gen, mx, prompts, cand_max, z, budget)
        fits = float(k)
        if k == len(head) and left > 0:
            # every visible newcomer fits: extend with typical ones (mean final footprint)
            p_mean, l_mean = self.lengths.mean_prompt_and_output()
            fits += math.floor(left / (p_mean + l_mean + half))
        return n + fits

    def _margin_left(self, oldest_wait_s: float) -> float:
        """1 with an empty queue, down to 0 once the head waited _RISK_TTFT_FRACTION x TTFT,
        and 1 again once it waited past the TTFT: its SLO is lost whatever is admitted
        (overload), and an eviction then only wastes work."""
        if not self.ttft_s or _RISK_TTFT_FRACTION <= 0 or oldest_wait_s > self.ttft_s:
            return 1.0
        return max(0.0, 1.0 - oldest_wait_s / (_RISK_TTFT_FRACTION * self.ttft_s))

    # ---- memory ---------------------------------------------------------------
    def _memory_bound(self, sample: ControlInput) -> float:
        budget = self.total_tokens * self.kv_fraction * self.scale
        if len(self.lengths) >= _WARMUP_FINISHED:
            mean, std = self.lengths.slot_moments()
            mean += self.tokens_per_block / 2  # the half-filled last block of each request
            return slots_that_fit(mean, std, self.z, budget)
        # Cold start, nothing learned yet: reserve what running requests may reach.
        running = sample.running
        if not running:
            return float(self.lower)
        need = sum(s.prompt_len + s.max_new_tokens for s in running.values()) / len(running)
        return budget / need

    # ---- reads ----------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

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

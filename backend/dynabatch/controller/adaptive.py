"""`adaptive` (default): memory bound from a learned final-footprint model, SLA bound
from an online step-latency fit, eviction as a hard signal, HPA-style stabilisation.

The equations are in docs/CONTROLLER.md. Every update is O(1) (the running map is read
only during the cold start): requests feed the length model and the TPOT percentile
once, when they finish.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np

from ..types import ControlInput, FinishReason, RequestState
from .base import UNPACED, LimitDecision
from .common import Ewma, SampleWindow, Stabilizer, batch_sample, clamp, tpot_sample_ms
from .kv_capacity import CAPACITY_UNKNOWN, CapacityTracker
from .kv_forecast import SurvivalTable
from .latency_fit import StepLatencyFit
from .registry import Bounds, params_of

# The SLO is on each request's TPOT (its mean step latency). The controller fits the step
# latency t = a + b n + c x (x: prefill tokens) over recent iterations, and learns from
# finished requests how far their TPOT percentile sits above the mean step latency of
# their time (short requests, prefill-heavy stretches): k = P_q(TPOT_i / t_loc), t_loc
# the *local* mean step latency at the finish. The bound caps the latency at the busiest
# moments; a long-run mean also averages in lighter stretches (and lags a ramp by about a
# minute), which inflated k and held the batch well below what the SLO allows.
_RATIO_WINDOW = 1024  # finished requests whose ratio r_i the percentile is taken over
_RATIO_MIN_FIT = 256  # iterations in the latency fit before ratios are recorded
# ratios needed before k is estimated: the first requests to finish are the short ones,
# whose TPOT carries the most prefill; 32 of them read k 1.46 where a run settles at 1.24
# (llama-3-8b-h100, 30 ms), and the SLA bound cut the batch while the queue grew
_RATIO_MIN = 128
# ... and at least this many batches' worth of them (finishes / running = elapsed time /
# mean lifetime, by Little's law): until the sample spans a few lifetimes, the long
# requests of the cold start are still running and the short ones over-fill it. On
# llama-2-70b-tp4-h100 (batch ~220) 128 finishes read k 1.94 where the run settles at
# 1.46, and the bound fell from 215 to 125 while the queue built (docs/CONTROLLER.md §2)
_RATIO_LIFETIMES = 4
_STEP_EWMA = 1.0 / 8  # weight of the recent step latency / batch (slope-free fallback)
_LATENCY_HALF_LIFE = 2048  # iterations: forgetting of the latency-vs-batch fit
_RATIO_REF_HALF_LIFE = 64  # iterations: half-life of t_loc, the ratios' reference
_SLA_MARGIN = 0.05  # SLA band: hold while the prediction is in [1 - 2m, 1] x target
_SLA_JUMP = 0.15  # beyond this relative error the SLA bound jumps, within it nudges
# the fit's line missing the local operating point by this part of the target means the
# plant changed (_fit_describes_now); the fit is dropped and relearnt
_FIT_DRIFT = _SLA_JUMP
_SLA_NUDGE = 0.5  # a nudge goes this part of the way to the solution (>= 1)
_SLA_START = 8  # SLA bound before any latency is seen (grows from there)
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
# Prefill pacing admits at least one request per iteration once the queue's oldest
# request has waited this part of the TTFT SLO: pacing trades a little TTFT for TPOT.
_PACE_TTFT_FRACTION = 0.25
# The SLA bound steps aside for TTFT once the queue's oldest request has waited this part
# of the TTFT SLO, the point where the memory forecast's margin is gone too
# (_RISK_TTFT_FRACTION). At the whole TTFT (before) the head had already missed, and the
# queue behind it, held at the TPOT bound through a burst, missed with it: on
# llama-3-8b-h100 at 0.5 s / 30 ms P99 TTFT read 0.58 s where no cap at all read 0.25 s
# at the same P99 TPOT (29 ms). docs/CONTROLLER.md §3.
_TTFT_STEP_ASIDE_FRACTION = 0.5
_USABLE = (FinishReason.LENGTH, FinishReason.EOS, FinishReason.END_ID, FinishReason.STOPPED)


class LengthModel:
    """Moments of one in-flight slot's KV footprint, learned from finished requests.

    A slot holding requests back to back sees request (p, L) for L steps, its footprint
    growing from p to p + L. At a random instant the slot holds a length-biased request
    at a uniform age a in [0, L], so with X = p + a:
        E[X]   = E[L p + L^2/2] / E[L]
        E[X^2] = E[p^2 L + p L^2 + L^3/3] / E[L]
    L is the final output (already capped by the request's max tokens).
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._items: deque[tuple[float, ...]] = deque()
        self._sums = [0.0] * 7  # L, Lp, L^2, p^2 L, p L^2, L^3, p

    def __len__(self) -> int:
        return len(self._items)

    def add(self, prompt_len: int, output_len: int) -> None:
        p, n = float(prompt_len), float(max(output_len, 1))
        item = (n, n * p, n * n, p * p * n, p * n * n, n * n * n, p)
        sums = self._sums
        if len(self._items) == self.window:
            old = self._items.popleft()
            for i in range(7):
                sums[i] -= old[i]
        self._items.append(item)
        for i in range(7):
            sums[i] += item[i]

    def outputs(self) -> list[float]:
        return [item[0] for item in self._items]

    def mean_prompt_and_output(self) -> tuple[float, float]:
        n = len(self._items)
        return (self._sums[6] / n, self._sums[0] / n) if n else (0.0, 0.0)

    def prefill_per_decode_step(self) -> float:
        """Prompt tokens per output token, E[p]/E[L]: the prefill each request brings
        per step it stays, so prefill per step grows in proportion to the batch."""
        return self._sums[6] / self._sums[0] if self._items else 0.0

    def slot_moments(self) -> tuple[float, float]:
        """(mean, standard deviation) of one slot's footprint in tokens."""
        s_l, s_lp, s_l2, s_p2l, s_pl2, s_l3, _ = self._sums
        mean = (s_lp + s_l2 / 2) / s_l
        second = (s_p2l + s_pl2 + s_l3 / 3) / s_l
        return mean, math.sqrt(max(second - mean * mean, 0.0))


def slots_that_fit(mean: float, std: float, z: float, budget: float) -> float:
    """Largest N with N*mean + z*std*sqrt(N) <= budget (CLT over independent slots)."""
    if budget <= 0 or mean <= 0:
        return 0.0 if budget <= 0 else math.inf
    b = z * std
    root = (-b + math.sqrt(b * b + 4 * mean * budget)) / (2 * mean)
    return root * root


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
        self.d_sla = tpot_sla_ms
        self.ttft_s = ttft_sla_s
        self.ttft_pressure = False
        self.stabilization_s = stabilization_s
        self._last_nudge = -math.inf
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
        # SLA state: k = P_q of r_i = TPOT_i / (long-run mean step latency), from a
        # log-normal fit of r_i (smooth, where an order statistic of a window jumps)
        self._log_ratios = SampleWindow(_RATIO_WINDOW)
        self._ratios_seen = 0  # ratios recorded since the start (the window keeps 1024)
        self._spread_known = False
        self.z_q = NormalDist().inv_cdf(min(tpot_percentile, 99.99) / 100.0)
        self.spread = 1.0
        self._step_ms = Ewma(_STEP_EWMA)  # recent mean step latency (slope-free fallback)
        # mean step latency over a typical request's life (half-life = mean output
        # length in steps): what a request finishing now averaged (burst allowance)
        self._life_ms = Ewma(_life_weight(0.0))
        self._slope: float | None = None  # ms per request of the last solved fit
        self._batch = Ewma(_STEP_EWMA)
        # the local operating point (t_loc, n_loc, x_loc): t_loc is r_i's reference, and
        # the three together check that the latency fit still describes the present
        local = 1.0 - 0.5 ** (1.0 / _RATIO_REF_HALF_LIFE)
        self._ref_ms, self._ref_batch, self._ref_ctx = Ewma(local), Ewma(local), Ewma(local)
        self.fit = StepLatencyFit(_LATENCY_HALF_LIFE)
        # bounds of the last update
        self.b_memory = float(lower)  # nothing admitted before the first sample
        self.b_sla = float(min(upper, max(lower, _SLA_START)))
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
        self._abc: tuple[float, float, float] | None = None

    # ---- feedback -------------------------------------------------------------
    def on_request_finish(self, state: RequestState) -> None:
        if state.finish_reason not in _USABLE or state.generated < 1:
            return
        self.lengths.add(state.prompt_len, state.generated)
        # the lifetime average's half-life follows the mean output (only changes here)
        self._life_ms.weight = _life_weight(self.lengths.mean_prompt_and_output()[1])
        self._survival_age += 1
        if self._survival_age >= _SURVIVAL_EVERY or len(self.lengths) <= 64:
            self._survival_age = 0
            self.survival.rebuild(self.lengths.outputs())
        # r_i is taken against the local mean step latency, once the fit has some history
        step_ms = self._ref_ms.value if self.fit.weight >= _RATIO_MIN_FIT else 0.0
        if (
            state.generated > 1
            and state.first_token_time is not None
            and state.finish_time is not None
            and step_ms
        ):
            tpot_ms = (state.finish_time - state.first_token_time) * 1e3 / (state.generated - 1)
            logs = self._log_ratios
            logs.add(math.log(max(tpot_ms / step_ms, 1e-3)))
            self._ratios_seen += 1
            if not self._spread_known:  # once known, k follows the window from then on
                need = max(_RATIO_MIN, _RATIO_LIFETIMES * self._batch.value)
                self._spread_known = self._ratios_seen >= need
            if self._spread_known:
                self.spread = max(0.5, math.exp(logs.mean + self.z_q * logs.std))

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
        # never below the floor (a solution or a nudge under it means the floor): the
        # bound is exported, and a negative one read as nonsense on /metrics
        self.b_sla = max(float(self.lower), self._sla_bound(stats, now))
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
            self.prefill_tokens_per_step = self._prefill_budget(sample)
        warm = len(self.lengths) >= _WARMUP_FINISHED
        if sample.waiting_head:
            self._head_seen = True
        forecast = warm and self._head_seen
        if forecast:
            # The forecast decides each admission as it comes (no stabilisation: it is a
            # fit test, not a target); the stabiliser only smooths the SLA bound.
            self.b_forecast = self._forecast_bound(sample, paused)
            self.b_memory = self.b_forecast
            sla = math.inf if self.ttft_pressure else self.b_sla + self._burst_allowance()
            self.raw = clamp(sla, self.lower, self.upper)
        else:
            memory = self.b_memory
            sla = memory if self.ttft_pressure else self.b_sla + self._burst_allowance()
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
        if self.b_memory <= self.b_sla:
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

    def _burst_allowance(self) -> float:
        """Requests admitted above the SLA bound while the step latency averaged over a
        request's life is under target: a request's TPOT is its steps' mean, so a burst
        may spend what the last lifetime left unused."""
        life, slope = self._life_ms.value, self._slope
        if life is None or slope is None or self.b_sla == math.inf:
            return 0.0
        target = (1.0 - _SLA_MARGIN) * self.d_sla / self.spread
        return max(0.0, target - life) / slope

    def _margin_left(self, oldest_wait_s: float) -> float:
        """1 with an empty queue, down to 0 once the head waited _RISK_TTFT_FRACTION x TTFT,
        and 1 again once it waited past the TTFT: its SLO is lost whatever is admitted
        (overload), and an eviction then only wastes work."""
        if not self.ttft_s or _RISK_TTFT_FRACTION <= 0 or oldest_wait_s > self.ttft_s:
            return 1.0
        return max(0.0, 1.0 - oldest_wait_s / (_RISK_TTFT_FRACTION * self.ttft_s))

    def _prefill_budget(self, sample: ControlInput) -> float:
        """Prompt tokens per iteration that keep an iteration's predicted latency within
        the TPOT SLO: t = a + b n + c x <= D with n the running requests, so x <= (D - a -
        b n) / c. A request's TPOT is the mean of the steps it decodes through; a step
        that carries several prompts at once (a burst) is what pushes the TPOT of the
        short requests beside it past D, and TensorRT-LLM cannot cap the tokens of an
        iteration at run time, so the gate spreads the prompts over iterations instead.
        Unpaced until the fit knows the prefill cost, and when decode alone misses D.
        TTFT in view: once the queue's oldest request has waited _PACE_TTFT_FRACTION of
        the TTFT SLO, the allowance is at least the queue head's prompt, so at least one
        request goes per iteration (lifting pacing there instead let the backlog of a
        burst in at once, a worse step than no pacing at all)."""
        abc = self._abc
        if abc is None or abc[2] <= 1e-9:
            return UNPACED
        a, b, c = abc
        headroom_ms = self.d_sla - a - b * len(sample.running)
        if headroom_ms <= 0:
            # decode alone already misses the SLO at this batch: no pace would meet it,
            # and pacing then would only hold the queue back (the SLA bound's business)
            return UNPACED
        allowance = 1000.0 * headroom_ms / c
        if self.ttft_s and sample.oldest_wait_s > _PACE_TTFT_FRACTION * self.ttft_s:
            head = sample.waiting_head
            allowance = max(allowance, float(head[0][0]) if head else UNPACED)
        return allowance

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

    # ---- SLA ------------------------------------------------------------------
    def _sla_bound(self, stats, now: float) -> float:
        tpot = tpot_sample_ms(stats)
        if tpot is None:
            return self.b_sla
        n = batch_sample(stats)
        x = stats.num_ctx_tokens / 1000.0
        self._step_ms.add(tpot)
        self._life_ms.add(tpot)
        self._ref_ms.add(tpot)
        self._batch.add(n)
        self._ref_batch.add(n)
        self._ref_ctx.add(x)
        fit = self.fit
        fit.add(n, x, tpot)
        # Hold the requests' percentile under the SLA: aim the mean step latency lower by k.
        target = self.d_sla / self.spread
        abc = fit.solve()
        self._slope = None
        if abc is not None and not self._fit_describes_now(abc, target):
            # the plant changed under a held batch: the fit forgets it and learns the
            # new one from here (the slope-free step below moves the batch meanwhile)
            fit = self.fit = StepLatencyFit(_LATENCY_HALF_LIFE)
            fit.add(n, x, tpot)
            self._ref_ms.value, self._ref_batch.value, self._ref_ctx.value = tpot, n, x
            abc = None
        self._abc = abc
        n_bar, x_bar, t_bar = fit.means()
        if abc is not None:
            a, b, c = abc
            # In steady state each request brings its prompt once per L steps, so the
            # prefill per step is n * E[p]/E[L]: t(n) = a + (b + c E[p]/E[L] / 1000) n.
            ratio = self.lengths.prefill_per_decode_step() if len(self.lengths) else 0.0
            slope = b + max(c, 0.0) * ratio / 1000.0
            self._slope = slope if slope > 1e-6 else None
            if slope <= 1e-6:  # latency does not grow with the batch: no SLA bound
                return math.inf
            if a >= target:
                # No batch size meets the target (a too-tight SLA): shrinking the batch
                # would cost throughput and still miss.
                return math.inf
            # Predict the mean step latency at the held bound from the measured operating
            # point along the fitted slope (anchoring cancels bias in the intercept).
            # Inside the band [(1 - 2m), 1] x target: hold. A little outside: nudge half
            # way to the solution (at least one request) once per stabilisation window
            # (TPOT is flat in n, so a solved n is noisy; one request per window took a
            # whole 400-request probe to recover from a cut). Far outside: jump to the
            # solution, just inside the band.
            held = self.b_sla
            if held != math.inf:
                err = (t_bar + slope * (held - n_bar)) / target
                low = 1 - 2 * _SLA_MARGIN
                if low <= err <= 1:
                    return held
            aim = 1 - _SLA_MARGIN
            solved = n_bar + (aim * target - t_bar) / slope
            if held != math.inf and 1 - _SLA_JUMP <= err <= 1 + _SLA_JUMP:
                if now - self._last_nudge < self.stabilization_s:
                    return held
                self._last_nudge = now
                step = max(1.0, abs(solved - held) * _SLA_NUDGE)
                return held - step if err > 1 else held + step
            return solved
        # The slope is unknown: the batch sat still (pinned by a bound) through all the
        # fit remembers, or since the plant changed (_fit_describes_now). Assume t is
        # proportional to n: that over-states the slope (the intercept is >= 0), so
        # steps are cautious up and quick down, and iterated they converge to t(n) =
        # target (and unpin the batch).
        t_now, n_now = self._step_ms.value, self._batch.value
        if not t_now or n_now is None:
            return self.b_sla
        if t_now > target:
            if n_now <= self.lower + 1:
                return math.inf  # the smallest batches miss too: not a batching problem
            return n_now * target / t_now
        if t_now < (1 - 2 * _SLA_MARGIN) * target:
            return max(n_now * target / t_now, n + 1)  # at least one more than now
        return self.b_sla

    def _fit_describes_now(self, abc: tuple[float, float, float], target_ms: float) -> bool:
        """Whether the fit's line passes within _FIT_DRIFT x target of the local
        operating point (t_loc, n_loc, x_loc). The fit remembers ~2048 steps; when the
        plant changes (a slower model, longer contexts) while the batch is held at one
        size, the new steps all sit at one n, where a change of intercept and a change
        of slope look the same, so the fit keeps most of the old slope and its line
        misses the present. Solved from there the bound swung (through negative values)
        and settled 7 % over target (t = 20 + 1.2 n, 50 ms: docs/CONTROLLER.md §2)."""
        t_loc, n_loc, x_loc = self._ref_ms.value, self._ref_batch.value, self._ref_ctx.value
        if t_loc is None or n_loc is None or x_loc is None:
            return True
        a, b, c = abc
        return abs(a + b * n_loc + c * x_loc - t_loc) <= _FIT_DRIFT * target_ms

    # ---- reads ----------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

    @property
    def decision(self) -> LimitDecision:
        if self._reason == CAPACITY_UNKNOWN:
            return LimitDecision(self._limit, {CAPACITY_UNKNOWN: float(self._limit)}, self._reason)
        return LimitDecision(
            self._limit,
            {
                "memory": _finite(self.b_memory, self.upper),
                # what the SLA side enforces: the bound plus the burst allowance
                "sla": _finite(self.b_sla + self._burst_allowance(), self.upper),
            },
            self._reason,
        )


def _life_weight(mean_output: float) -> float:
    """EWMA weight of a half-life of the mean output length in steps (at least 8)."""
    return 1.0 - 0.5 ** (1.0 / max(8.0, mean_output))


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

"""`adaptive`'s SLA side: the batch size whose predicted step latency keeps the requests'
TPOT percentile under the SLO, the burst allowance above it, and the prefill pacing
budget. It learns from the engine's iterations (the step-latency fit) and from finished
requests (the TPOT spread k); the equations are in docs/CONTROLLER.md §2-§3.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from ..types import ControlInput, IterationStats, RequestState
from .base import UNPACED
from .common import Ewma, SampleWindow, batch_sample, tpot_sample_ms
from .latency_fit import StepLatencyFit
from .length_model import LengthModel

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
# Prefill pacing admits at least one request per iteration once the queue's oldest
# request has waited this part of the TTFT SLO: pacing trades a little TTFT for TPOT.
_PACE_TTFT_FRACTION = 0.25


class SlaBound:
    """The SLA bound `b_sla` (never under the floor), what a burst may add above it, and
    the prefill tokens per iteration that keep a step within the TPOT SLO."""

    def __init__(
        self,
        *,
        lower: int,
        upper: int,
        tpot_sla_ms: float,
        tpot_percentile: float,
        stabilization_s: float,
        ttft_sla_s: float,
        lengths: LengthModel,
    ) -> None:
        self.lower = lower
        self.d_sla = tpot_sla_ms
        self.ttft_s = ttft_sla_s
        self.stabilization_s = stabilization_s
        self._last_nudge = -math.inf
        # the memory side's model of finished requests: E[p]/E[L] turns the fit's
        # prefill cost into a cost per request, E[L] sets the lifetime average's half-life
        self.lengths = lengths
        # k = P_q of r_i = TPOT_i / (long-run mean step latency), from a log-normal fit
        # of r_i (smooth, where an order statistic of a window jumps)
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
        self.b_sla = float(min(upper, max(lower, _SLA_START)))
        # the fit (a, b, c) of the last generation step, for the prefill budget
        self._abc: tuple[float, float, float] | None = None

    # ---- feedback -------------------------------------------------------------
    def on_finish(self, state: RequestState) -> None:
        """A request finished with a usable length (already in `lengths`)."""
        # the lifetime average's half-life follows the mean output (only changes here)
        self._life_ms.weight = _life_weight(self.lengths.mean_prompt_and_output()[1])
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
                # the batch EWMA is fed with every step the fit is, so it is known here
                need = max(_RATIO_MIN, _RATIO_LIFETIMES * (self._batch.value or 0.0))
                self._spread_known = self._ratios_seen >= need
            if self._spread_known:
                self.spread = max(0.5, math.exp(logs.mean + self.z_q * logs.std))

    def update(self, stats: IterationStats, now: float) -> float:
        """Learn from one iteration and return the new bound. Never below the floor (a
        solution or a nudge under it means the floor): the bound is exported, and a
        negative one read as nonsense on /metrics."""
        self.b_sla = max(float(self.lower), self._solve(stats, now))
        return self.b_sla

    # ---- reads ----------------------------------------------------------------
    def enforced(self) -> float:
        """What the SLA side enforces: the bound plus the burst allowance."""
        return self.b_sla + self.burst_allowance()

    def burst_allowance(self) -> float:
        """Requests admitted above the SLA bound while the step latency averaged over a
        request's life is under target: a request's TPOT is its steps' mean, so a burst
        may spend what the last lifetime left unused."""
        life, slope = self._life_ms.value, self._slope
        if life is None or slope is None or self.b_sla == math.inf:
            return 0.0
        target = (1.0 - _SLA_MARGIN) * self.d_sla / self.spread
        return max(0.0, target - life) / slope

    def prefill_budget(self, sample: ControlInput) -> float:
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

    # ---- the bound ------------------------------------------------------------
    def _solve(self, stats: IterationStats, now: float) -> float:
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


def _life_weight(mean_output: float) -> float:
    """EWMA weight of a half-life of the mean output length in steps (at least 8)."""
    return 1.0 - 0.5 ** (1.0 / max(8.0, mean_output))

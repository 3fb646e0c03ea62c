"""Forecast of the KV cache's future occupancy from the learned output-length distribution.

What `adaptive` admits with when it sees the queue head. A running request that has
produced g tokens still holds its cache h steps later iff its final length L > g + h
(and g + h < its max tokens), and then holds c + h tokens (c = prompt + g today). From
the survival function S(t) = P(L > t) of recently finished requests:

    q_i(h)   = S(g_i + h) / S(g_i)                  (still running at step h)
    E[O(h)]  = sum_i q_i(h) (c_i + h)
    Var O(h) = sum_i q_i(h) (1 - q_i(h)) (c_i + h)^2

A newcomer (prompt p, g = 0) is added the same way. Requests admitted later are decided
later, so the question for an admission is only whether the set admitted so far ever
overflows: the candidates fit while max_h E[O(h)] + z sd(h) <= budget, h on a grid.
This is the clairvoyant oracle's rule (bench/oracle.py) with the true lengths replaced
by the conditional length distribution, and the CLT margin of the paper on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Step horizons checked: fine near now (the next blocks), coarse far out (finishes).
_GRID = np.array(
    [
        0,
        2,
        8,
        16,
        32,
        64,
        96,
        128,
        192,
        256,
        384,
        512,
        768,
        1024,
        1536,
        2048,
        4096,
        8192,
        16384,
        32768,
    ],
    dtype=np.int64,
)


class SurvivalTable:
    """S(t) = P(L > t) of the learned lengths, with a half pseudo-count so that a request
    that outlived every sample is assumed to run on to its max tokens (cautious)."""

    def __init__(self) -> None:
        self.surv: np.ndarray = np.ones(1)
        self.top = 0

    def rebuild(self, lengths: Sequence[float]) -> None:
        ls = np.sort(np.asarray(lengths, dtype=np.int64))
        n = len(ls)
        self.top = int(ls[-1]) + 1 if n else 0
        t = np.arange(self.top + 1)
        alive = n - np.searchsorted(ls, t, side="right")
        self.surv = (alive + 0.5) / (n + 0.5)

    def fits(
        self,
        current: np.ndarray,
        generated: np.ndarray,
        max_new: np.ndarray,
        prompts: np.ndarray,
        cand_max: np.ndarray,
        z: float,
        budget: float,
    ) -> tuple[int, float]:
        """(how many of the candidates fit in order, the budget left after them, in tokens).

        current/generated/max_new: running requests (tokens held today incl. block
        rounding, tokens produced, max tokens); prompts/cand_max: the queue head."""
        s, top, n = self.surv, self.top, len(current)
        # one pass over running requests then candidates: row j of the cumulative sums is
        # the forecast with everything up to j admitted
        cur = np.concatenate((current, prompts))
        gen = np.concatenate((generated, np.zeros(len(prompts), dtype=np.int64)))
        mx = np.concatenate((max_new, cand_max))
        h_max = int(mx.max(initial=1))
        grid = _GRID[: int(np.searchsorted(_GRID, h_max, side="right"))]
        t = gen[:, None] + grid[None, :]
        q = s[np.minimum(t, top)] / s[np.minimum(gen, top)][:, None]
        q *= t < mx[:, None]
        size = cur[:, None] + grid[None, :]
        mean = q * size
        var = mean * (1.0 - q) * size
        zero = np.zeros((1, len(grid)))
        mean = np.concatenate((zero, mean.cumsum(axis=0)))[n:]  # rows: 0..k candidates
        var = np.concatenate((zero, var.cumsum(axis=0)))[n:]
        peak = (mean + z * np.sqrt(var)).max(axis=1)
        ok = peak[1:] <= budget
        k = len(prompts) if ok.all() else int(np.argmin(ok))
        return k, float(budget - peak[k])

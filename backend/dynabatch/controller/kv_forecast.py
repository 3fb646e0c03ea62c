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
        h_max = int(max(max_new.max(initial=1), cand_max.max(initial=1)))
        grid = _GRID[: int(np.searchsorted(_GRID, h_max, side="right"))]
        # the running requests only enter summed over requests; the candidates in order
        run_mean, run_var = self._moments(current, generated, max_new, grid)
        peak_now = float((run_mean + z * np.sqrt(run_var)).max())  # nothing admitted
        if not len(prompts):
            return 0, budget - peak_now
        zeros = np.zeros(len(prompts), dtype=np.int64)
        c_mean, c_var = self._rows(prompts, zeros, cand_max, grid)
        # row j: the forecast with candidates 0..j admitted
        peak = (run_mean + c_mean.cumsum(axis=0) + z * np.sqrt(run_var + c_var.cumsum(axis=0))).max(
            axis=1
        )
        ok = peak <= budget
        k = len(prompts) if ok.all() else int(np.argmin(ok))
        return k, budget - (float(peak[k - 1]) if k else peak_now)

    def _survival(self, generated: np.ndarray, max_new: np.ndarray, grid: np.ndarray):
        """q[i, j]: probability that request i still runs grid[j] steps from now (S is
        flat past its last sample: `clip` reads S(top) beyond it)."""
        s = self.surv
        t = np.add.outer(generated, grid)
        q = np.take(s, t, mode="clip")
        q /= np.take(s, generated, mode="clip")[:, None]
        q *= t < max_new[:, None]
        return q

    def _moments(self, current, generated, max_new, grid) -> tuple[np.ndarray, np.ndarray]:
        """Sum over requests of the mean and variance of the tokens held at each horizon.

        With c_i + h held w.p. q_i: sum q (c + h) = c.q + h 1.q, and with w = q (1 - q),
        sum w (c + h)^2 = c^2.w + 2 h c.w + h^2 1.w: vector-matrix products (BLAS)
        instead of (requests x horizons) temporaries and strided column sums, the cost
        of an update at 256 running requests."""
        q = self._survival(generated, max_new, grid)
        w = q - q * q
        c = current.astype(np.float64)
        ones = np.ones(len(c))
        h = grid.astype(np.float64)
        mean = c @ q + h * (ones @ q)
        var = (c * c) @ w + 2.0 * h * (c @ w) + h * h * (ones @ w)
        return mean, var

    def _rows(self, current, generated, max_new, grid) -> tuple[np.ndarray, np.ndarray]:
        """Per request (rows) mean and variance of the tokens held at each horizon."""
        q = self._survival(generated, max_new, grid)
        size = current[:, None] + grid[None, :]
        mean = q * size
        return mean, mean * (1.0 - q) * size

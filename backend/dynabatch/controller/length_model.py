"""The memory side's slot model: the moments of one in-flight slot's KV footprint,
learned from finished requests, and how many slots fit a token budget (CLT).

`adaptive` reads it for its memory bound before the forecast takes over, the SLA side
for the prefill each request brings per step, and the survival table for the outputs.
"""

from __future__ import annotations

import math
from collections import deque


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

"""Online fit of the step latency: t = a + b*n + c*x, exponentially forgotten.

n is the batch (requests in the step) and x the prefill tokens in it (thousands).
Fitting both keeps prefill chunks, which ride on the steps where requests are admitted,
from biasing the batch slope. O(1) per sample; the 2x2 normal equations are solved on
centred moments.
"""

from __future__ import annotations


class StepLatencyFit:
    def __init__(self, half_life: float) -> None:
        self.forget = 0.5 ** (1.0 / half_life)
        self._s = [0.0] * 10  # w, n, x, t, nn, xx, nx, nt, xt, tt

    def add(self, n: float, x: float, t: float) -> None:
        s, g = self._s, self.forget
        for i, v in enumerate((1.0, n, x, t, n * n, x * x, n * x, n * t, x * t, t * t)):
            s[i] = s[i] * g + v

    @property
    def weight(self) -> float:
        return self._s[0]

    def means(self) -> tuple[float, float, float]:
        w, n, x, t = self._s[:4]
        return (n / w, x / w, t / w) if w else (0.0, 0.0, 0.0)

    def solve(self, min_var_n: float = 0.25) -> tuple[float, float, float] | None:
        """(a, b, c), or None while the batch has not varied enough to tell b."""
        w, sn, sx, st, snn, sxx, snx, snt, sxt, _ = self._s
        if w <= 0:
            return None
        n, x, t = sn / w, sx / w, st / w
        vn, vx = snn / w - n * n, sxx / w - x * x
        cnx, cnt, cxt = snx / w - n * x, snt / w - n * t, sxt / w - x * t
        if vn < min_var_n:
            return None
        det = vn * vx - cnx * cnx
        if vx > 1e-9 and det > 1e-9 * vn * vx:
            b = (cnt * vx - cxt * cnx) / det
            c = (cxt * vn - cnt * cnx) / det
        else:  # no prefill variation: a plain regression on n
            b, c = cnt / vn, 0.0
        return t - b * n - c * x, b, c

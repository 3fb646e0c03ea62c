"""Profiles against published figures: the calibration table and the offline fit.

`calibration_rows()` compares every published figure (docs/SIMULATOR.md, "Published figures") with the profile's
prediction; `fit_profile()` refits c0, eta_c and p (eta_bw fixed, see profiles.py)
by Nelder-Mead on squared log error. The fitted values are committed in profiles.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .latency import LatencyModel
from .profiles import PROFILES, Profile, get_profile, with_constants

TOLERANCE = 0.15  # every figure must be within +-15 %

# TensorRT-LLM's published static-batch figure (docs/SIMULATOR.md): LLaMA-7B FP16 on A100,
# batch 60, 128 in / 2048 out -> 1,928 output tokens/s (~31 ms per step).
STATIC_BATCH: dict[str, Any] = dict(
    profile="llama-2-7b-a100-80gb", batch=60, prompt_len=128, output_len=2048, tokens_per_s=1928.0
)


@dataclass(frozen=True)
class CalibrationRow:
    profile: str
    figure: str
    predicted: float
    published: float
    unit: str
    source: str

    @property
    def rel_error(self) -> float:
        return (self.predicted - self.published) / self.published

    def as_dict(self) -> dict:
        return {**asdict(self), "rel_error": self.rel_error, "ok": abs(self.rel_error) <= TOLERANCE}


def calibration_rows() -> list[CalibrationRow]:
    rows: list[CalibrationRow] = []
    for prof in PROFILES.values():
        model = LatencyModel(prof)
        for tokens, ms in prof.published_ms:
            rows.append(
                CalibrationRow(
                    prof.name,
                    f"linear layers, {tokens} tokens/step",
                    model.linear_s(tokens) * 1e3,
                    ms,
                    "ms",
                    prof.source,
                )
            )
    sb = STATIC_BATCH
    model = LatencyModel(get_profile(sb["profile"]))
    total_s = model.static_batch_s(sb["batch"], sb["prompt_len"], sb["output_len"])
    tokens_per_s = sb["batch"] * sb["output_len"] / total_s
    rows.append(
        CalibrationRow(
            sb["profile"],
            f"whole run, static batch {sb['batch']}, {sb['prompt_len']} in / "
            f"{sb['output_len']} out",
            tokens_per_s,
            sb["tokens_per_s"],
            "output tok/s",
            "TensorRT-LLM published performance (LLaMA-7B FP16, A100)",
        )
    )
    rows.append(
        CalibrationRow(
            sb["profile"],
            "same run, mean step time",
            total_s / sb["output_len"] * 1e3,
            sb["batch"] / sb["tokens_per_s"] * 1e3,
            "ms",
            "derived from the line above",
        )
    )
    return rows


def format_table(rows: list[CalibrationRow]) -> str:
    head = f"{'profile':<28} {'figure':<50} {'predicted':>10} {'published':>10} {'error':>8}  unit"
    lines = [head, "-" * len(head)]
    for r in rows:
        flag = "" if abs(r.rel_error) <= TOLERANCE else "  OUT OF TOLERANCE"
        lines.append(
            f"{r.profile:<28} {r.figure:<50} {r.predicted:>10.2f} {r.published:>10.2f} "
            f"{r.rel_error:>+7.1%}  {r.unit}{flag}"
        )
    worst = max(abs(r.rel_error) for r in rows)
    lines.append(f"{len(rows)} figures, worst |error| {worst:.1%} (tolerance {TOLERANCE:.0%})")
    return "\n".join(lines)


# ---- offline fit ------------------------------------------------------------------
def _loss(profile: Profile, x: list[float]) -> float:
    c0_ms, eta_c, p = x
    if c0_ms < 0 or not 0.05 < eta_c <= 1.0 or not 1.0 <= p <= 20.0:
        return 1e9
    model = LatencyModel(with_constants(profile, c0_s=c0_ms * 1e-3, eta_c=eta_c, p=p))
    return sum(math.log(model.linear_s(n) * 1e3 / ms) ** 2 for n, ms in profile.published_ms)


def _nelder_mead(f, x0: list[float], step: list[float], iters: int = 2000) -> list[float]:
    pts = [list(x0)] + [
        [x + (s if i == j else 0.0) for j, x in enumerate(x0)] for i, s in enumerate(step)
    ]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = sorted(range(len(pts)), key=vals.__getitem__)
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        if vals[-1] - vals[0] < 1e-14:
            break
        centroid = [sum(c) / (len(pts) - 1) for c in zip(*pts[:-1])]
        refl = [c + (c - w) for c, w in zip(centroid, pts[-1])]
        fr = f(refl)
        if fr < vals[0]:
            exp = [c + 2 * (c - w) for c, w in zip(centroid, pts[-1])]
            fe = f(exp)
            pts[-1], vals[-1] = (exp, fe) if fe < fr else (refl, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = refl, fr
        else:
            con = [c + 0.5 * (w - c) for c, w in zip(centroid, pts[-1])]
            fc = f(con)
            if fc < vals[-1]:
                pts[-1], vals[-1] = con, fc
            else:  # shrink towards the best point
                pts = [pts[0]] + [[b + 0.5 * (x - b) for b, x in zip(pts[0], q)] for q in pts[1:]]
                vals = [vals[0]] + [f(q) for q in pts[1:]]
    return pts[min(range(len(pts)), key=vals.__getitem__)]


def fit_profile(profile: Profile) -> Profile:
    """Fit c0, eta_c, p to the profile's published figures (needs at least 3)."""
    if len(profile.published_ms) < 3:
        raise ValueError(f"{profile.name}: no published figures to fit")
    best: list[float] | None = None
    best_loss = float("inf")
    for p0 in (1.5, 3.0, 6.0):  # a few starts: the loss is not convex in p
        x = _nelder_mead(lambda v: _loss(profile, v), [0.5, 0.7, p0], [0.5, 0.05, 0.5])
        loss = _loss(profile, x)
        if loss < best_loss:
            best, best_loss = x, loss
    assert best is not None  # three starts ran
    c0_ms, eta_c, p = best
    return with_constants(
        profile, c0_s=round(c0_ms, 4) * 1e-3, eta_c=round(eta_c, 4), p=round(p, 3)
    )

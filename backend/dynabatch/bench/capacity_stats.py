"""Per-seed capacity searches -> one row per policy: median, min-max, and paired
per-seed comparisons (win / tie / loss) against the baselines.

Seeds are paired (every policy saw the same arrivals per seed), so a comparison is made
seed by seed: ratio_s = ours_s / baseline_s. A ratio within the bisection's relative
tolerance of 1 is a tie (two searches of the same threshold can differ by that much).
"Best static" is the static limit (any N, either capacity policy) with the highest
median capacity in the group: the configuration a user finds by sweeping limits.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# The sweep behind "best static in hindsight": what a user finds by trying limits.
DENSE_LIMITS = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
BASELINES = (
    "trtllm_default",
    "vllm_default",
    "trtllm_tuner",
    "sglang_ratio",
    "paper",
    "paper_sla",
    "best_static",
)
_COPIED = (
    "policy",
    "controller",
    "capacity_policy",
    "static",
    "profile",
    "workload",
    "requests_per_probe",
    "rel_tol",
    "slo_ttft_s",
    "slo_tpot_s",
    "slo_level",
)


def win_tie_loss(ratios: Sequence[float], tolerance: float) -> tuple[int, int, int]:
    """Seeds won (ratio > 1 + tol), tied, lost (ratio < 1 - tol)."""
    win = sum(1 for r in ratios if r > 1 + tolerance)
    loss = sum(1 for r in ratios if r < 1 - tolerance)
    return win, len(ratios) - win - loss, loss


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return math.inf if a > 0 else 1.0  # both zero: a tie


def cell_key(row: dict) -> tuple:
    """A grid cell: the same arrivals per seed and the same SLO."""
    return (row["workload"], row["profile"], row["slo_ttft_s"], row["slo_tpot_s"])


def summarize_seeds(seed_rows: Sequence[dict], tolerance: float) -> list[dict]:
    """Group per-seed rows by (cell, policy), in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in seed_rows:
        groups.setdefault((*cell_key(r), r["policy"]), []).append(r)
    rows = []
    for members in groups.values():
        members = sorted(members, key=lambda r: r["seed"])
        caps = [r["capacity_rps"] for r in members]
        fails = [r["first_failing_rps"] for r in members if not math.isnan(r["first_failing_rps"])]
        row = {k: members[0][k] for k in _COPIED if k in members[0]}
        row.update(
            {
                "seeds": [r["seed"] for r in members],
                "capacity_rps": statistics.median(caps),
                "capacity_min_rps": min(caps),
                "capacity_max_rps": max(caps),
                "capacity_by_seed": caps,
                "first_failing_rps": statistics.median(fails) if fails else math.nan,
                "probes": sum(r["probes"] for r in members),
                "probes_run": sum(r.get("probes_run", r["probes"]) for r in members),
                "probe_logs": [r["probe_log"] for r in members],
            }
        )
        rows.append(row)
    for cell in dict.fromkeys(cell_key(r) for r in rows):
        compare_cell([r for r in rows if cell_key(r) == cell], tolerance)
    return rows


def compare_cell(rows: list[dict], tolerance: float) -> None:
    """Add best_static, vs_<baseline> (ratio of medians), vs_<baseline>_min (worst
    seed's ratio) and wtl_<baseline> ("wins/ties/losses") to every row of one cell."""
    statics = [r for r in rows if r["static"]]
    best = max(statics, key=lambda r: r["capacity_rps"], default=None)
    by = {r["policy"]: r for r in rows}
    refs = {b: by[b] for b in BASELINES if b in by}
    if best is not None:
        refs["best_static"] = best
    for r in rows:
        r["best_static"] = best["policy"] if best else None
        for name, ref in refs.items():
            per_seed = [
                _ratio(a, b) for a, b in zip(r["capacity_by_seed"], ref["capacity_by_seed"])
            ]
            r[f"vs_{name}"] = _ratio(r["capacity_rps"], ref["capacity_rps"])
            r[f"vs_{name}_min"] = min(per_seed)
            r[f"wtl_{name}"] = "/".join(str(v) for v in win_tie_loss(per_seed, tolerance))

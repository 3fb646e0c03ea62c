"""Paired-seed summaries of fleet capacity rows: median with min-max over seeds of the
capacity, of the scaling against one replica, and of each router against round-robin."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def _spread(values: Sequence[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "seeds": len(values),
    }


def summarize_capacity(rows: Sequence[dict], baseline_router: str = "round-robin") -> list[dict]:
    """One row per (workload, router, replicas). Ratios are taken seed by seed (paired:
    the same arrivals and lengths) before the median."""
    by_key = {
        (r["workload"], r["router"], r["replicas"], r["seed"]): r["capacity_rps"] for r in rows
    }
    out = []
    for wl, router, n in sorted({(r["workload"], r["router"], r["replicas"]) for r in rows}):
        seeds = sorted(s for (w, ro, k, s) in by_key if (w, ro, k) == (wl, router, n))
        caps = [by_key[wl, router, n, s] for s in seeds]
        row = {"workload": wl, "router": router, "replicas": n, "capacity_rps": _spread(caps)}
        one = [(by_key.get((wl, router, 1, s)), by_key[wl, router, n, s]) for s in seeds]
        if all(a for a, _ in one):
            row["vs_one_replica"] = _spread([c / a for a, c in one])
        base = [(by_key.get((wl, baseline_router, n, s)), by_key[wl, router, n, s]) for s in seeds]
        if all(a for a, _ in base):
            row[f"vs_{baseline_router}"] = _spread([c / a for a, c in base])
        out.append(row)
    return out


def format_summary(summary: Sequence[dict], baseline_router: str = "round-robin") -> str:
    def cell(d: dict | None, fmt: str) -> str:
        if not d:
            return "-"
        return f"{d['median']:{fmt}} ({d['min']:{fmt}}-{d['max']:{fmt}})"

    head = ("workload", "router", "N", "capacity req/s", "x N=1", f"x {baseline_router}")
    lines = [head]
    for r in summary:
        lines.append(
            (
                r["workload"],
                r["router"],
                str(r["replicas"]),
                cell(r["capacity_rps"], ".2f"),
                cell(r.get("vs_one_replica"), ".2f"),
                cell(r.get(f"vs_{baseline_router}"), ".2f"),
            )
        )
    widths = [max(len(row[c]) for row in lines) for c in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in lines)

"""Figure: fleet capacity against N per router and workload (median, min-max bars)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def plot_scaling(summary: Sequence[dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = sorted({r["workload"] for r in summary})
    fig, axes = plt.subplots(1, len(workloads), figsize=(5 * len(workloads), 4), squeeze=False)
    for ax, wl in zip(axes[0], workloads):
        ns = {r["replicas"] for r in summary if r["workload"] == wl}
        if len(ns) == 1:  # one fleet size: a bar per router
            _bars(ax, [r for r in summary if r["workload"] == wl], wl, ns.pop())
            continue
        for router in sorted({r["router"] for r in summary if r["workload"] == wl}):
            rows = sorted(
                (r for r in summary if r["workload"] == wl and r["router"] == router),
                key=lambda r: r["replicas"],
            )
            xs = [r["replicas"] for r in rows]
            med = [r["capacity_rps"]["median"] for r in rows]
            lo = [m - r["capacity_rps"]["min"] for m, r in zip(med, rows)]
            hi = [r["capacity_rps"]["max"] - m for m, r in zip(med, rows)]
            ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=3, label=router)
        ax.set_title(wl)
        ax.set_xlabel("replicas (N)")
        ax.set_ylabel("capacity under P99 SLOs (req/s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _bars(ax, rows: Sequence[dict], workload: str, n: int) -> None:
    """One fleet size: each router against round-robin seed by seed where round-robin
    ran on the same seeds (the seeds' own spread in capacity is far wider than the
    routers' differences), else the capacity itself."""
    rows = sorted(rows, key=lambda r: r["router"])
    paired = all("vs_round-robin" in r for r in rows)
    key = "vs_round-robin" if paired else "capacity_rps"
    med = [r[key]["median"] for r in rows]
    lo = [m - r[key]["min"] for m, r in zip(med, rows)]
    hi = [r[key]["max"] - m for m, r in zip(med, rows)]
    ax.bar(range(len(rows)), med, yerr=[lo, hi], capsize=3)
    ax.set_xticks(range(len(rows)), [r["router"] for r in rows], rotation=25, fontsize=7)
    ax.set_title(f"{workload}, N={n}")
    if paired:
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_ylabel("capacity / round-robin's, same seed")
    else:
        ax.set_ylabel("capacity under P99 SLOs (req/s)")
    ax.grid(alpha=0.3, axis="y")

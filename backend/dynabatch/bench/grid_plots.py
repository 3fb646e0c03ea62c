"""Figures of a capacity grid: capacity against the TPOT SLO per policy (one figure
per profile, one panel per workload), and the win/loss map of adaptive against the
best static limit over every cell."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .plots import _pyplot, _slug

# Lines drawn in the capacity-vs-TPOT figure (the best static is added per cell).
CURVES = (
    "adaptive",
    "trtllm_default",
    "vllm_default",
    "paper_sla",
    "paper",
    "trtllm_tuner",
    "sglang_ratio",
)


def plot_capacity_vs_tpot(rows: Sequence[dict], profile: str, path: Path) -> Path:
    plt = _pyplot()
    mine = [r for r in rows if r["profile"] == profile]
    workloads = list(dict.fromkeys(r["workload"] for r in mine))
    fig, axes = plt.subplots(
        1, len(workloads), figsize=(4.2 * len(workloads), 3.6), squeeze=False, sharey=False
    )
    for ax, wl in zip(axes[0], workloads):
        cell_rows = [r for r in mine if r["workload"] == wl]
        series: dict[str, list[dict]] = {}
        for r in cell_rows:
            if r["policy"] in CURVES:
                series.setdefault(r["policy"], []).append(r)
            if r.get("best_static") == r["policy"]:
                series.setdefault("best static", []).append(r)
        for name, pts in series.items():
            pts = sorted(pts, key=lambda r: r["slo_tpot_s"])
            x = [r["slo_tpot_s"] * 1000 for r in pts]
            y = [r["capacity_rps"] for r in pts]
            err = [
                [r["capacity_rps"] - r["capacity_min_rps"] for r in pts],
                [r["capacity_max_rps"] - r["capacity_rps"] for r in pts],
            ]
            style = "-o" if name == "adaptive" else ("--s" if name == "best static" else ":.")
            ax.errorbar(x, y, yerr=err, fmt=style, capsize=3, label=name)
        ax.set_xscale("log")
        ticks = sorted({r["slo_tpot_s"] * 1000 for r in cell_rows})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_title(wl, fontsize=10)
        ax.set_xlabel("TPOT SLO (ms, P99)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("capacity (req/s): median, min-max over seeds")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{profile}: capacity under SLOs", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_win_loss_map(lines: Sequence[dict], path: Path) -> Path:
    """Rows: profile x SLO level; columns: workloads; colour: adaptive / best static
    (median), text: the ratio and per-seed W/T/L."""
    import numpy as np

    plt = _pyplot()
    row_keys = list(dict.fromkeys((c["profile"], c["slo_level"]) for c in lines))
    cols = list(dict.fromkeys(c["workload"] for c in lines))
    grid = np.full((len(row_keys), len(cols)), np.nan)
    text = [["" for _ in cols] for _ in row_keys]
    for c in lines:
        i, j = row_keys.index((c["profile"], c["slo_level"])), cols.index(c["workload"])
        ratio = c.get("vs_best_static")
        if ratio is not None:
            grid[i, j] = ratio
            text[i][j] = f"{ratio:.2f}\n{c.get('wtl_best_static', '')}"
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 3.5, 0.55 * len(row_keys) + 1.6))
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0.8, vmax=1.2, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_keys)), [f"{p} / {s}" for p, s in row_keys], fontsize=8)
    for i in range(len(row_keys)):
        for j in range(len(cols)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="adaptive / best static")
    ax.set_title("adaptive vs best static in hindsight (W/T/L per seed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_grid_figures(rows: Sequence[dict], lines: Sequence[dict], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        plot_capacity_vs_tpot(rows, prof, out / f"capacity-vs-tpot-{_slug(prof)}.png")
        for prof in dict.fromkeys(r["profile"] for r in rows)
    ]
    if lines:
        paths.append(plot_win_loss_map(lines, out / "win-loss-map.png"))
    return paths

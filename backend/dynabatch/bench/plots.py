"""PNG figures for a bench run (matplotlib, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers/CI
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def plot_policies(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Output throughput and P99 TPOT per policy, side by side."""
    plt = _pyplot()
    names = [r["policy"] for r in rows]
    tput = [r.get("output_tok_s") or 0.0 for r in rows]
    tpot = [(r.get("tpot_p99_s") or 0.0) * 1000 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, max(3.0, 0.32 * len(rows) + 1.2)), sharey=True)
    y = np.arange(len(rows))
    axes[0].barh(y, tput, color="tab:blue")
    axes[0].set_xlabel("output tokens/s")
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    axes[1].barh(y, tpot, color="tab:orange")
    axes[1].set_xlabel("P99 TPOT (ms)")
    slo = rows[0].get("slo_tpot_s") if rows else None
    if slo:
        axes[1].axvline(slo * 1000, color="red", linestyle="--", label="SLO")
        axes[1].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_timelines(timelines: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """Batch limit, running requests and KV occupancy over time, one line per policy.

    `timelines` maps a policy name to {"t": [...], "limit": [...], "running": [...],
    "kv": [...]} (the runner's Timeline.as_dict())."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    for name, tl in timelines.items():
        t = tl["t"]
        axes[0].step(t, tl["limit"], where="post", label=name)
        axes[1].plot(t, tl["running"], label=name)
        axes[2].plot(t, [100 * k for k in tl["kv"]], label=name)
    axes[0].set_ylabel("batch limit")
    axes[1].set_ylabel("running requests")
    axes[2].set_ylabel("KV occupancy (%)")
    axes[2].set_xlabel("time (s, virtual clock)")
    axes[0].legend(loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_figures(
    rows: Sequence[dict], timelines: dict[str, dict], out_dir: str | Path, prefix: str
) -> list[Path]:
    out = Path(out_dir)
    paths = [plot_policies(rows, out / f"{_slug(prefix)}-policies.png", prefix)]
    if timelines:
        paths.append(plot_timelines(timelines, out / f"{_slug(prefix)}-timeline.png", prefix))
    return paths

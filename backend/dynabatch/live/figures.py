"""PNG figures of live runs: throughput and latency vs load; batch limit, running
requests and KV occupancy over time (from /metrics samples)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .scrape import Sample

# Metric families the Triton model exports (TensorRT-LLM-compatible names first).
KV_FAMILY = "nv_trt_llm_kv_cache_block_metrics"
REQ_FAMILY = "nv_trt_llm_request_metrics"
BATCHER_FAMILY = "nv_trt_llm_inflight_batcher_metrics"
LIMIT_FAMILY = "dynabatch_batch_limit"


def _pairs(
    samples: Sequence[Sample], name: str, model: str | None = None, **labels: str
) -> dict[float, float]:
    out: dict[float, float] = {}
    for s in samples:
        if s.name != name or (model and s.label("model", model) != model):
            continue
        if all(s.label(k) == v for k, v in labels.items()):
            out[s.t] = s.value
    return out


def timeline(samples: Sequence[Sample], model: str | None = None) -> dict[str, list]:
    """t, batch limit, running requests and KV occupancy (0..1) per scrape."""
    used = _pairs(samples, KV_FAMILY, model, kv_cache_block_type="used")
    total = _pairs(samples, KV_FAMILY, model, kv_cache_block_type="max")
    running = _pairs(samples, REQ_FAMILY, model, request_type="active")
    limit = _pairs(samples, LIMIT_FAMILY, model)
    ts = sorted(set(used) | set(running) | set(limit))
    nan = float("nan")
    return {
        "t": ts,
        "limit": [limit.get(t, nan) for t in ts],
        "running": [running.get(t, nan) for t in ts],
        "kv": [used[t] / total[t] if total.get(t) and t in used else nan for t in ts],
    }


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(config: str, order: list[str]) -> str:
    """The same configuration gets the same colour in every figure."""
    return f"C{order.index(config) % 10}" if config in order else "C9"


def plot_vs_load(rows: Sequence[dict], path: Path, load_key: str = "rate_rps") -> Path:
    """Rows: one per (config, load) with output_tok_s, ttft_p99_s, tpot_p99_s."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    order = list(dict.fromkeys(r["config"] for r in rows))
    for config in order:
        rs = sorted((r for r in rows if r["config"] == config), key=lambda r: r[load_key])
        x = [r[load_key] for r in rs]
        c = _colour(config, order)
        axes[0].plot(x, [r["output_tok_s"] for r in rs], "o-", color=c, label=config)
        axes[1].plot(x, [r["ttft_p99_s"] * 1000 for r in rs], "o-", color=c, label=config)
        axes[2].plot(x, [r["tpot_p99_s"] * 1000 for r in rs], "o-", color=c, label=config)
    for ax, title in zip(axes, ("output tokens/s", "P99 TTFT (ms)", "P99 TPOT (ms)")):
        ax.set_title(title)
        ax.set_xlabel("offered load (requests/s)")
        ax.grid(alpha=0.3)
    if rows and "slo_tpot_s" in rows[0]:
        axes[2].axhline(rows[0]["slo_tpot_s"] * 1000, color="grey", ls="--", lw=1, label="SLO")
        axes[1].axhline(rows[0]["slo_ttft_s"] * 1000, color="grey", ls="--", lw=1, label="SLO")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_timeline(series: dict[str, dict[str, list]], path: Path, time_scale: float = 1.0) -> Path:
    """series: config -> timeline(); time axis converted to the engine's clock."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    top = 1.0
    order = list(series)
    for config, tl in series.items():
        t = [x / time_scale for x in tl["t"]]
        (line,) = axes[0].plot(
            t, tl["running"], lw=1.2, color=_colour(config, order), label=f"{config}: running"
        )
        top = max([top] + [v for v in tl["running"] if v == v])
        limits = [v for v in tl["limit"] if v == v]
        if limits:
            fixed = max(limits) == min(limits)
            axes[0].plot(
                t,
                tl["limit"],
                "--",
                lw=1,
                color=line.get_color(),
                label=f"{config}: limit" + (f" = {limits[0]:g}" if fixed else ""),
            )
            if not fixed:
                top = max(top, max(limits))
        axes[1].plot(t, [v * 100 for v in tl["kv"]], lw=1.2, color=line.get_color(), label=config)
    # A static limit far above the batch would squash the interesting part.
    axes[0].set_ylim(0, top * 1.4)
    axes[0].set_ylabel("requests in flight")
    axes[0].set_title("batch limit and running requests (scraped from /metrics)")
    axes[1].set_ylabel("KV cache used (%)")
    axes[1].set_xlabel("time (s, engine clock)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

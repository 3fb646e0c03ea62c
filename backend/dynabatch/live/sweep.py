"""perf_analyzer sweeps against any running model (local simulated or a GPU deployment).

perf_analyzer does the load (`--concurrency-range` or `--request-rate-range`,
`--streaming` over gRPC, `--input-data` JSON built from a trace or from length
distributions); we read back its CSV export (-f) and its profile export (per-request
response timestamps and outputs, from which TTFT, TPOT and output tokens/s come), and
sample /metrics alongside, into one table.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..bench.workload import Workload
from .replay import prompt_ids
from .scrape import MetricsScraper, write_csv


def perf_analyzer_path() -> str:
    here = Path(sys.executable).parent / "perf_analyzer"
    found = str(here) if here.exists() else shutil.which("perf_analyzer")
    if not found:
        raise RuntimeError(
            "perf_analyzer not found: `bash scripts/setup` installs it from "
            "tritonclient[all]==2.51.0 (see docs/LIVE.md)"
        )
    return found


def perf_analyzer_env() -> dict:
    """perf_analyzer links libcudart.so.12 (PyPI nvidia-cuda-runtime-cu12) even on CPU."""
    env = dict(os.environ)
    try:
        import nvidia.cuda_runtime as cr

        lib = str(Path(list(cr.__path__)[0]) / "lib")
        env["LD_LIBRARY_PATH"] = lib + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    except ImportError:
        pass
    return env


def input_data(workload: Workload, input_names: Sequence[str] = ()) -> dict:
    """perf_analyzer --input-data JSON: one entry per request, used round-robin.

    perf_analyzer cannot send per-request parameters, so the hidden true length becomes
    `request_output_len` (capped by the workload's max tokens): every engine, simulated
    or GPU with EOS ignored, then produces the trace's lengths.
    """
    data = []
    for i, r in enumerate(workload.items):
        out_len = r.output_len(workload.max_new_tokens)
        entry = {
            "input_ids": {"content": prompt_ids(i, r.prompt_len).tolist(), "shape": [r.prompt_len]},
            "request_output_len": [out_len],
        }
        if "input_lengths" in input_names:
            entry["input_lengths"] = [r.prompt_len]
        if "streaming" in input_names:
            entry["streaming"] = [True]
        data.append(entry)
    return {"data": data}


@dataclass
class SweepPoint:
    mode: str  # concurrency | request_rate
    load: float  # the concurrency or the request rate
    requests: int
    throughput_rps: float  # perf_analyzer's Inferences/Second
    response_rps: float  # perf_analyzer's Response Throughput
    output_tok_s: float  # from the profile export: tokens in the measured windows / their span
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float
    pa_p50_latency_ms: float  # perf_analyzer's latency (decoupled: time to first response)
    pa_p99_latency_ms: float


def read_pa_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f)]


def _tokens(output: dict) -> int:
    ids = output.get("output_ids") if output else None
    if ids is None:
        return 0
    return int(np.asarray(ids).size)


def profile_stats(export: dict) -> list[dict]:
    """Per experiment: request count, output tokens/s, TTFT and TPOT percentiles (ms)."""
    out = []
    for exp in export.get("experiments", []):
        ttft, tpot, data_all = [], [], []
        for req in exp.get("requests", []):
            stamps = req.get("response_timestamps") or []
            outputs = req.get("response_outputs") or [{"output_ids": 0}] * len(stamps)
            counts = [_tokens(o) for o in outputs]
            data = [(t, n) for t, n in zip(stamps, counts) if n > 0]
            if not data:
                continue
            data_all += data
            n_tok = sum(n for _, n in data)
            t_first, t_last = data[0][0], data[-1][0]
            ttft.append((t_first - req["timestamp"]) / 1e6)
            if n_tok > 1:
                tpot.append((t_last - t_first) / 1e6 / (n_tok - 1))
        # Output tokens/s = tokens streamed inside the measurement windows / their length
        # (without window boundaries: from the first send to the last response).
        bounds = exp.get("window_boundaries") or []
        if len(bounds) >= 2:
            lo, hi = bounds[0], bounds[-1]
        else:
            sends = [r["timestamp"] for r in exp.get("requests", [])]
            lo, hi = (min(sends), max(t for t, _ in data_all)) if data_all and sends else (0, 0)
        tokens = sum(n for t, n in data_all if lo <= t <= hi)
        span = (hi - lo) / 1e9 if hi > lo else 0.0
        pct = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")
        out.append(
            {
                "mode": exp["experiment"]["mode"],
                "load": float(exp["experiment"]["value"]),
                "requests": len(ttft),
                "output_tok_s": tokens / span if span else 0.0,
                "ttft_p50_ms": pct(ttft, 50),
                "ttft_p99_ms": pct(ttft, 99),
                "tpot_p50_ms": pct(tpot, 50),
                "tpot_p99_ms": pct(tpot, 99),
            }
        )
    return out


def merge(rows: list[dict], stats: list[dict], mode: str) -> list[SweepPoint]:
    key = "Concurrency" if mode == "concurrency" else "Request Rate"
    by_load = {float(s["load"]): s for s in stats}
    points = []
    for row in rows:
        load = float(row.get(key) or 0)
        s = by_load.get(load, {})
        us = lambda name, row=row: float(row.get(name) or "nan") / 1000.0
        points.append(
            SweepPoint(
                mode=mode,
                load=load,
                requests=int(s.get("requests", 0)),
                throughput_rps=float(row.get("Inferences/Second") or 0),
                response_rps=float(row.get("Response Throughput") or 0),
                output_tok_s=float(s.get("output_tok_s", 0.0)),
                ttft_p50_ms=s.get("ttft_p50_ms", float("nan")),
                ttft_p99_ms=s.get("ttft_p99_ms", float("nan")),
                tpot_p50_ms=s.get("tpot_p50_ms", float("nan")),
                tpot_p99_ms=s.get("tpot_p99_ms", float("nan")),
                pa_p50_latency_ms=us("p50 latency"),
                pa_p99_latency_ms=us("p99 latency"),
            )
        )
    return sorted(points, key=lambda p: p.load)


@dataclass
class SweepConfig:
    url: str  # gRPC host:port
    model: str
    mode: str = "concurrency"  # or request_rate
    load_range: str = "1:8:1"  # perf_analyzer start:end:step
    measurement_ms: int = 4000
    max_trials: int = 3
    # Per-window throughput of an LLM varies with the length mix; a stability test would
    # fail or spin, so (as genai-perf does) accept any spread: the result is the last
    # `max_trials` windows.
    stability_pct: int = 999
    metrics_url: str | None = None
    timeout_s: float = 540.0
    extra_args: tuple = ()


def run_sweep(
    cfg: SweepConfig, input_json: Path, out_dir: Path, label: str = ""
) -> list[SweepPoint]:
    """Run one perf_analyzer sweep; write pa.csv, profile.json, metrics.csv, sweep.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{label}_" if label else ""
    csv_path, prof_path = out_dir / f"{tag}pa.csv", out_dir / f"{tag}profile.json"
    prof_path.unlink(missing_ok=True)  # perf_analyzer refuses to overwrite its export
    flag = "--concurrency-range" if cfg.mode == "concurrency" else "--request-rate-range"
    cmd = [
        perf_analyzer_path(),
        "-m",
        cfg.model,
        "-u",
        cfg.url,
        "-i",
        "grpc",
        "--streaming",
        "--input-data",
        str(input_json),
        flag,
        cfg.load_range,
        "-p",
        str(cfg.measurement_ms),
        "--max-trials",
        str(cfg.max_trials),
        "--stability-percentage",
        str(cfg.stability_pct),
        "-f",
        str(csv_path),
        "--profile-export-file",
        str(prof_path),
        *cfg.extra_args,
    ]
    scraper = MetricsScraper(cfg.metrics_url).start() if cfg.metrics_url else None
    try:
        run = subprocess.run(
            cmd, env=perf_analyzer_env(), capture_output=True, text=True, timeout=cfg.timeout_s
        )
    finally:
        samples = scraper.stop() if scraper else []
    (out_dir / f"{tag}pa.log").write_text(" ".join(cmd) + "\n\n" + run.stdout + run.stderr)
    if run.returncode != 0 or not csv_path.exists():
        raise RuntimeError(
            f"perf_analyzer failed ({run.returncode}); see {out_dir / (tag + 'pa.log')}:\n"
            + (run.stderr or run.stdout)[-1500:]
        )
    if samples:
        write_csv(samples, out_dir / f"{tag}metrics.csv")
    stats = profile_stats(json.loads(prof_path.read_text())) if prof_path.exists() else []
    points = merge(read_pa_csv(csv_path), stats, cfg.mode)
    write_points(points, out_dir / f"{tag}sweep.csv", label)
    return points


def write_points(points: Sequence[SweepPoint], path: Path, label: str = "") -> None:
    with open(path, "w", newline="") as f:
        fields = ["config"] + list(asdict(points[0]).keys()) if points else ["config"]
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for p in points:
            w.writerow({"config": label, **asdict(p)})


def format_points(points: Sequence[SweepPoint], label: str = "") -> str:
    head = (
        f"{'config':<10} {'load':>6} {'req':>5} {'req/s':>7} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p99':>9} "
        f"{'TPOT p50':>9} {'TPOT p99':>9}   (ms)"
    )
    lines = [head]
    for p in points:
        lines.append(
            f"{label:<10} {p.load:>6g} {p.requests:>5} {p.throughput_rps:>7.2f} {p.output_tok_s:>8.1f} "
            f"{p.ttft_p50_ms:>9.1f} {p.ttft_p99_ms:>9.1f} {p.tpot_p50_ms:>9.2f} {p.tpot_p99_ms:>9.2f}"
        )
    return "\n".join(lines)


def model_input_names(url: str, model: str) -> list[str]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    try:
        cfg = client.get_model_config(model, as_json=True)["config"]
    finally:
        client.close()
    return [i["name"] for i in cfg.get("input", [])]


def plot_points(points_by_label: dict[str, Sequence[SweepPoint]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for label, pts in points_by_label.items():
        x = [p.load for p in pts]
        axes[0].plot(x, [p.output_tok_s for p in pts], "o-", label=label or "model")
        axes[1].plot(x, [p.ttft_p99_ms for p in pts], "o-")
        axes[2].plot(x, [p.tpot_p99_ms for p in pts], "o-")
    mode = next(iter(points_by_label.values()))[0].mode if points_by_label else "concurrency"
    for ax, title in zip(axes, ("output tokens/s", "P99 TTFT (ms)", "P99 TPOT (ms)")):
        ax.set_title(title)
        ax.set_xlabel("concurrency" if mode == "concurrency" else "request rate (req/s)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ..bench.workload import load_trace, synthetic

    ap = argparse.ArgumentParser(prog="scripts/sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC host:port")
    ap.add_argument(
        "--metrics-url",
        default=None,
        help="Triton /metrics URL to sample during the sweep (e.g. http://127.0.0.1:8002/metrics)",
    )
    ap.add_argument("-m", "--model", default="tensorrt_llm")
    ap.add_argument("--concurrency-range", default=None, metavar="START:END:STEP")
    ap.add_argument("--request-rate-range", default=None, metavar="START:END:STEP")
    src = ap.add_mutually_exclusive_group()
    src.add_argument(
        "--trace", default=None, help="Azure-format trace CSV: its length pairs are the inputs"
    )
    src.add_argument(
        "--synthetic",
        action="store_true",
        help="lognormal lengths (--prompt-median, --output-median) instead of a trace",
    )
    ap.add_argument("--prompt-median", type=float, default=512)
    ap.add_argument("--output-median", type=float, default=128)
    ap.add_argument("--inputs", type=int, default=200, help="distinct requests in the input data")
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--measurement-ms", type=int, default=5000)
    ap.add_argument("--max-trials", type=int, default=3)
    ap.add_argument("--out", default="out/sweep")
    ap.add_argument("--label", default="")
    a = ap.parse_args(argv)
    if bool(a.concurrency_range) == bool(a.request_rate_range):
        ap.error("give exactly one of --concurrency-range and --request-rate-range")
    if a.trace:
        wl = load_trace(a.trace, first_n=a.inputs, max_new_tokens=a.max_new_tokens)
    else:
        wl = synthetic(
            a.inputs,
            1.0,
            prompt_median=a.prompt_median,
            output_median=a.output_median,
            max_len=a.max_new_tokens,
            max_new_tokens=a.max_new_tokens,
        )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    input_json = out / "input_data.json"
    input_json.write_text(json.dumps(input_data(wl, model_input_names(a.url, a.model))))
    mode = "concurrency" if a.concurrency_range else "request_rate"
    cfg = SweepConfig(
        url=a.url,
        model=a.model,
        mode=mode,
        load_range=a.concurrency_range or a.request_rate_range,
        measurement_ms=a.measurement_ms,
        max_trials=a.max_trials,
        metrics_url=a.metrics_url,
    )
    points = run_sweep(cfg, input_json, out, label=a.label)
    fig = plot_points(
        {a.label or a.model: points}, out / f"{a.label + '_' if a.label else ''}sweep.png"
    )
    print(format_points(points, a.label or a.model))
    prefix = f"{a.label}_" if a.label else ""
    print(
        f"table: {out / (prefix + 'sweep.csv')}; figure: {fig}; "
        f"perf_analyzer CSV and profile export beside them"
    )
    return 0

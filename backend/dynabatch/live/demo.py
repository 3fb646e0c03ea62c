"""`make demo`: the static and the dynamic configuration side by side in one real
tritonserver, the same load for both, one table, figures under out/demo/.

Both models run the simulated engine in real time (scaled by `time_scale`) with a
memory-constrained profile. Per load level each configuration gets the same Poisson
workload (trace length pairs), replayed over gRPC streaming one configuration after
the other, while /metrics is sampled. The same workloads also go through
`dynabatch bench`'s virtual-clock runner with the same parameters, and the two
dynamic/static throughput ratios are printed side by side.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..bench.metrics import Slo, summarize
from ..bench.runner import run_policy
from ..bench.workload import Workload, load_trace, resample
from ..data import CONV_TRACE
from .figures import BATCHER_FAMILY, plot_timeline, plot_vs_load, timeline
from .models import DYNAMIC_MODEL, STATIC_MODEL, live_spec, simulated_params
from .pbtxt import get_parameters
from .replay import replay
from .scrape import MetricsScraper, write_csv
from .server import TritonServer, build_repository
from .text_demo import TEXT_PROMPTS, run_text_demo

DEFAULT_TRACE = CONV_TRACE
TRACE_FIRST_N = 600  # length pairs are resampled from the trace's first 600 requests
GNE = {"batch_scheduler_policy": "guaranteed_no_evict"}


@dataclass(frozen=True)
class Served:
    """One served configuration: the shipped model directory plus parameter overrides."""

    label: str
    model: str  # model name in the demo's repository
    source: Path
    overrides: tuple = ()


# The baselines are what a user gets without tuning: TensorRT-LLM's default capacity
# policy (guaranteed_no_evict) at the shipped static config's max batch, and the
# shipped static config itself (a hand-set batch of 64 under max_utilization).
CONFIGS = (
    Served("static-gne", "static_gne", STATIC_MODEL, tuple(GNE.items())),
    Served("static-maxu", "static_maxu", STATIC_MODEL),
    Served("dynamic", "dynamic", DYNAMIC_MODEL),
)


@dataclass
class DemoConfig:
    out_dir: Path = Path("out/demo")
    profile: str = "llama-2-13b-a100-40gb"
    trace: Path = DEFAULT_TRACE
    requests: int = 60  # per load level and configuration
    loads: tuple = (
        1.0,
        2.0,
        3.0,
    )  # Poisson rates (engine clock, req/s): below, near, above capacity
    time_scale: float = 0.5  # wall seconds per engine second
    max_new_tokens: int = 1024
    slo: Slo = field(default_factory=lambda: Slo(ttft_s=2.0, tpot_s=0.1))
    seed: int = 0
    overrides: dict = field(default_factory=dict)  # label -> {param: value}
    configs: tuple = CONFIGS
    drain_timeout_s: float = 120.0
    text_prompts: tuple = TEXT_PROMPTS  # answered through the text `ensemble` (empty: skip)


def workloads(cfg: DemoConfig) -> list[Workload]:
    base = load_trace(cfg.trace, first_n=TRACE_FIRST_N, max_new_tokens=cfg.max_new_tokens)
    return [
        resample(base, cfg.requests, rate, seed=cfg.seed + i, name=f"conv-poisson-{rate:g}rps")
        for i, rate in enumerate(cfg.loads)
    ]


def model_params(cfg: DemoConfig) -> dict[str, dict[str, str]]:
    """config.pbtxt parameters of both models: the shipped ones plus the demo's engine."""
    out = {}
    for c in cfg.configs:
        params = get_parameters((c.source / "config.pbtxt").read_text())
        params.update(
            simulated_params(cfg.profile, cfg.time_scale, tpot_sla_ms=f"{cfg.slo.tpot_s * 1000:g}")
        )
        params.update(dict(c.overrides))
        params.update({k: str(v) for k, v in cfg.overrides.get(c.label, {}).items()})
        out[c.label] = {k: v for k, v in params.items() if not v.strip().startswith("${")}
    return out


def live_run(
    server: TritonServer, model: str, workload: Workload, cfg: DemoConfig
) -> tuple[dict, list]:
    scraper = MetricsScraper(server.metrics_url, interval_s=0.25).start()
    try:
        records, _ = replay(
            server.grpc_url,
            model,
            workload,
            time_scale=cfg.time_scale,
            drain_timeout_s=cfg.drain_timeout_s,
        )
        time.sleep(0.3)  # one more scrape after the last response
    finally:
        samples = scraper.stop()
    recs = [r.to_record(cfg.time_scale) for r in records]
    row = summarize(recs, None, cfg.slo)
    tl = timeline(samples, model)
    row.update(_batch_stats(tl, samples, model))
    errors = [r.error for r in records if r.error]
    row["errors"] = len(errors)
    row["first_error"] = errors[0] if errors else ""
    return row, samples


def _batch_stats(tl: dict, samples: list, model: str) -> dict:
    """Mean requests in flight while busy and pauses, from the /metrics samples."""
    busy = [v for v in tl["running"] if v == v and v > 0]
    paused = [
        s.value
        for s in samples
        if s.name == "dynabatch_paused_total" and s.label("model", model) == model
    ]
    if not paused:  # fall back on TensorRT-LLM's gauge of currently paused requests
        paused = [
            s.value
            for s in samples
            if s.name == BATCHER_FAMILY
            and s.label("inflight_batcher_specific_metric") == "paused_requests"
            and s.label("model", model) == model
        ]
        pauses = sum(1 for a, b in zip(paused, paused[1:]) if b > a)
    else:
        pauses = max(paused) - min(paused)
    return {"mean_batch": sum(busy) / len(busy) if busy else math.nan, "paused": pauses}


def virtual_run(workload: Workload, cfg: DemoConfig, params: dict[str, str], label: str) -> dict:
    spec, engine_kw, max_batch = live_spec(label, params)
    res = run_policy(
        workload,
        cfg.profile,
        spec,
        slo=cfg.slo,
        max_batch_size=max_batch,
        engine_kw=engine_kw,
        max_wall_s=120.0,
    )
    return res.row


def run_demo(cfg: DemoConfig, log=print) -> dict:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    loads = workloads(cfg)
    params = model_params(cfg)
    repo = build_repository(
        out / "model_repository",
        {c.model: c.source for c in cfg.configs},
        overrides={c.model: params[c.label] for c in cfg.configs},
    )
    rows, virtual, series = [], [], {}
    # Virtual clock first (seconds): the same code the server is about to load.
    for wl, rate in zip(loads, cfg.loads):
        for c in cfg.configs:
            v = virtual_run(wl, cfg, params[c.label], c.label)
            v.update(config=c.label, rate_rps=rate, clock="virtual")
            virtual.append(v)
    log(
        f"[demo] profile {cfg.profile}, {len(loads)} load levels x {cfg.requests} requests, "
        f"time scale {cfg.time_scale:g}; starting tritonserver on 127.0.0.1"
    )
    with TritonServer(repo, log_path=out / "server.log") as server:
        for wl, rate in zip(loads, cfg.loads):
            for c in cfg.configs:
                t0 = time.monotonic()
                row, samples = live_run(server, c.model, wl, cfg)
                row.update(config=c.label, rate_rps=rate, clock="live")
                rows.append(row)
                write_csv(samples, out / f"metrics_{c.label}_{rate:g}rps.csv")
                if rate == cfg.loads[-1]:
                    series[c.label] = timeline(samples, c.model)
                log(
                    f"[demo] {c.label:>11} @ {rate:g} req/s: {row['output_tok_s']:7.1f} tok/s, "
                    f"P99 TPOT {row['tpot_p99_s'] * 1000:6.1f} ms, {row['errors']} errors "
                    f"({time.monotonic() - t0:.0f} s)"
                )
        log("[demo] stopping tritonserver")
    answers = run_text_demo(out, cfg.text_prompts, log=log) if cfg.text_prompts else []
    figs = [
        plot_vs_load(rows, out / "load.png"),
        plot_timeline(series, out / "timeline.png", cfg.time_scale),
    ]
    result = {
        "live": rows,
        "virtual": virtual,
        "params": params,
        "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items() if k != "slo"
        }
        | {"slo": vars(cfg.slo)},
        "wall_s": time.monotonic() - t_start,
        "figures": [str(f) for f in figs],
        "text": [vars(a) for a in answers],
    }
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    log("")
    log(format_table(rows, virtual, cfg))
    log("")
    log(
        f"[demo] figures: {figs[0]}, {figs[1]}; raw results: {out / 'results.json'} "
        f"({result['wall_s']:.0f} s)"
    )
    return result


def ratio(rows: list[dict], rate: float, base: str, top: str = "dynamic") -> float:
    by = {r["config"]: r for r in rows if r["rate_rps"] == rate}
    s, d = by.get(base), by.get(top)
    return d["output_tok_s"] / s["output_tok_s"] if s and d and s["output_tok_s"] else math.nan


def _geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x == x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


def format_table(rows: list[dict], virtual: list[dict], cfg: DemoConfig) -> str:
    ms = lambda v: f"{v * 1000:8.0f}" if v == v else "       -"
    lines = [
        f"Live tritonserver: {cfg.profile} (simulated engine, time scale {cfg.time_scale:g}), "
        f"{cfg.requests} requests per run; SLO TTFT <= {cfg.slo.ttft_s:g} s, "
        f"TPOT <= {cfg.slo.tpot_s * 1000:g} ms; latencies in ms on the engine clock",
        f"{'load':>7}  {'config':<12}{'tok/s':>7} {'TTFT p50':>8} {'TTFT p99':>8} {'TPOT p50':>8} "
        f"{'TPOT p99':>8} {'SLA %':>6} {'batch':>6} {'pauses':>6}",
    ]
    for rate in cfg.loads:
        for c in cfg.configs:
            r = next((x for x in rows if x["rate_rps"] == rate and x["config"] == c.label), None)
            if r is None:
                continue
            lines.append(
                f"{rate:>5g}/s  {c.label:<12}{r['output_tok_s']:7.1f} {ms(r['ttft_p50_s'])} {ms(r['ttft_p99_s'])} "
                f"{ms(r['tpot_p50_s'])} {ms(r['tpot_p99_s'])} {r['sla_attainment'] * 100:6.1f} "
                f"{r['mean_batch']:6.1f} {r['paused']:6.0f}"
            )
    statics = [c.label for c in cfg.configs if c.label != "dynamic"]
    lines += ["", "dynamic / static output tokens/s   live  virtual  live/virtual"]
    for base in statics:
        lvs, vvs = [], []
        for rate in cfg.loads:
            lv, vv = ratio(rows, rate, base), ratio(virtual, rate, base)
            lvs.append(lv), vvs.append(vv)
            lines.append(
                f"  vs {base:<12} @ {rate:>4g} req/s   {lv:5.2f}  {vv:7.2f}  {lv / vv:12.2f}"
            )
        if len(cfg.loads) > 1:
            lg, vg = _geomean(lvs), _geomean(vvs)
            lines.append(f"  vs {base:<12} all loads (gm)  {lg:5.2f}  {vg:7.2f}  {lg / vg:12.2f}")
    lines.append(
        "virtual = `dynabatch bench`'s virtual-clock runner on the same workloads and parameters."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/demo")
    ap.add_argument("--profile", default=DemoConfig.profile)
    ap.add_argument("--trace", default=str(DEFAULT_TRACE))
    ap.add_argument("--requests", type=int, default=DemoConfig.requests)
    ap.add_argument(
        "--loads",
        default=",".join(f"{x:g}" for x in DemoConfig.loads),
        help="comma-separated Poisson rates, req/s on the engine clock",
    )
    ap.add_argument("--time-scale", type=float, default=DemoConfig.time_scale)
    ap.add_argument("--max-new-tokens", type=int, default=DemoConfig.max_new_tokens)
    ap.add_argument("--slo-ttft-s", type=float, default=2.0)
    ap.add_argument("--slo-tpot-ms", type=float, default=100.0)
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="CONFIG:KEY=VALUE",
        help="override a parameter of one configuration (static-gne, static-maxu, dynamic)",
    )
    a = ap.parse_args(argv)
    cfg = DemoConfig(
        out_dir=Path(a.out),
        profile=a.profile,
        trace=Path(a.trace),
        requests=a.requests,
        loads=tuple(float(x) for x in a.loads.split(",")),
        time_scale=a.time_scale,
        max_new_tokens=a.max_new_tokens,
        slo=Slo(a.slo_ttft_s, a.slo_tpot_ms / 1000.0),
        overrides=_overrides(a.param),
    )
    run_demo(cfg)
    return 0


def _overrides(items: list[str]) -> dict:
    out: dict = {}
    for item in items:
        label, _, kv = item.partition(":")
        key, sep, value = kv.partition("=")
        if not sep or label not in {c.label for c in CONFIGS}:
            raise SystemExit(
                f"--param wants CONFIG:KEY=VALUE with CONFIG one of "
                f"{', '.join(c.label for c in CONFIGS)}; got {item!r}"
            )
        out.setdefault(label, {})[key] = value
    return out

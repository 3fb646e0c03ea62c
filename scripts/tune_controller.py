#!/usr/bin/env python3
"""Quick closed-loop comparison of batch policies on the simulated executor.

Drives the real ServingCore + AdmissionGate + controller + SimulatedExecutor on the
virtual clock with Poisson arrivals whose (prompt, output) pairs are drawn from an
Azure LLM 2023 trace (CC-BY 4.0, see backend/dynabatch/data/traces/README.md), and prints
throughput, P99 TPOT/TTFT, SLA attainment and evictions per policy. Used to design
`adaptive`; the full benchmark lives in dynabatch.bench.

    .venv/bin/python scripts/tune_controller.py --trace conv --rate 3 --n 1500
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from dynabatch.bench.runner import drive_virtual
from dynabatch.bench.workload import load_trace, resample
from dynabatch.controller import make_controller
from dynabatch.core import ServingCore
from dynabatch.data import TRACE_DIR
from dynabatch.engines.simulated.executor import SimulatedExecutor
from dynabatch.gate import AdmissionGate

TRACES = TRACE_DIR


class Recorder:
    def __init__(self) -> None:
        self.done: list = []

    def on_event(self, event, state) -> None:
        if event.finished and state is not None:
            self.done.append(state)


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    v = sorted(values)
    return v[max(0, math.ceil(q / 100 * len(v)) - 1)]


def run(
    policy: str,
    params: dict,
    workload,
    *,
    profile: str,
    max_batch: int,
    capacity_policy: str,
    tpot_slo_s: float,
    ttft_slo_s: float,
    max_iters: int = 400_000,
):
    engine = SimulatedExecutor(profile, max_batch_size=max_batch, capacity_policy=capacity_policy)
    ctl = make_controller(policy, params, max_batch_size=max_batch, kv_capacity=engine.kv_capacity)
    core = ServingCore(engine, ctl, AdmissionGate())
    sink = Recorder()
    reqs = workload.requests()
    limits: list[int] = []
    drive_virtual(
        core,
        engine,
        reqs,
        lambda i: sink,
        max_iterations=max_iters,
        on_pass=lambda: limits.append(ctl.limit),
    )
    done = [s for s in sink.done if s.first_token_time is not None]
    span = max(s.finish_time for s in done) - min(s.arrival_time for s in done)
    out_tokens = sum(s.generated for s in done)
    tpots = [
        (s.finish_time - s.first_token_time) / (s.generated - 1) for s in done if s.generated > 1
    ]
    ttfts = [s.first_token_time - s.arrival_time for s in done]
    ok = sum(
        1
        for s in done
        if s.first_token_time - s.arrival_time <= ttft_slo_s
        and (
            s.generated < 2
            or (s.finish_time - s.first_token_time) / (s.generated - 1) <= tpot_slo_s
        )
    )
    half = limits[len(limits) // 2 :]
    return {
        "policy": policy + ("" if capacity_policy == "max_utilization" else "/no_evict"),
        "done": len(done),
        "tok_s": out_tokens / span,
        "req_s": len(done) / span,
        "tpot_p99_ms": pct(tpots, 99) * 1e3,
        "ttft_p99_s": pct(ttfts, 99),
        "slo_ok": ok / max(len(done), 1),
        "pauses": core.counters.paused_total,
        "limit_mean": sum(half) / max(len(half), 1),
        "limit_min": min(half, default=0),
        "limit_max": max(half, default=0),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trace", choices=("conv", "code"), default="conv")
    ap.add_argument("--rate", type=float, default=3.0, help="Poisson arrivals per second")
    ap.add_argument("--n", type=int, default=1500, help="requests")
    ap.add_argument("--profile", default="llama-2-13b-a100-40gb")
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--tpot-slo-ms", type=float, default=100.0)
    ap.add_argument("--ttft-slo-s", type=float, default=10.0)
    ap.add_argument("--statics", default="8,12,16,24,32", help="static limits to try")
    ap.add_argument("--policies", default="adaptive,paper,paper_memory,sglang_ratio,trtllm_tuner")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="param=value for every policy")
    args = ap.parse_args(argv)
    base = load_trace(
        TRACES / f"azure_llm_2023_{args.trace}.csv", max_new_tokens=args.max_new_tokens
    )
    work = resample(base, args.n, args.rate, seed=args.seed)
    params = {"tpot_sla_ms": args.tpot_slo_ms}
    params.update(kv.split("=", 1) for kv in args.set)
    common = dict(
        profile=args.profile,
        max_batch=args.max_batch,
        tpot_slo_s=args.tpot_slo_ms / 1e3,
        ttft_slo_s=args.ttft_slo_s,
    )
    runs = [("static", {"static_batch_size": args.max_batch}, "guaranteed_no_evict")]
    runs += [
        ("static", {"static_batch_size": int(s)}, "max_utilization")
        for s in args.statics.split(",")
        if s
    ]
    runs += [(p, {}, "max_utilization") for p in args.policies.split(",") if p]
    print(f"{work.name}: {len(work)} requests, profile {args.profile}, max_batch {args.max_batch}")
    head = (
        f"{'policy':<22}{'tok/s':>8}{'req/s':>7}{'TPOTp99':>9}{'TTFTp99':>9}"
        f"{'SLO%':>6}{'pauses':>7}{'limit(mean/min/max)':>22}{'wall':>6}"
    )
    print(head)
    for policy, extra, cap in runs:
        t0 = time.perf_counter()
        r = run(policy, {**params, **extra}, work, capacity_policy=cap, **common)
        name = r["policy"] + (f"={extra['static_batch_size']}" if policy == "static" else "")
        print(
            f"{name:<22}{r['tok_s']:>8.0f}{r['req_s']:>7.2f}{r['tpot_p99_ms']:>9.1f}"
            f"{r['ttft_p99_s']:>9.2f}{r['slo_ok'] * 100:>6.1f}{r['pauses']:>7d}"
            f"{r['limit_mean']:>10.1f}/{r['limit_min']:>4d}/{r['limit_max']:>4d}"
            f"{time.perf_counter() - t0:>6.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

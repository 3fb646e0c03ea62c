#!/usr/bin/env python3
"""Simulator speed and real-time fidelity.

  replay   : replay a whole Azure trace (default: the conversation trace, 19,366
             requests) through dynabatch.core.ServingCore + AdmissionGate + a fixed
             batch limit, on the virtual clock; prints wall time and what was served.
  realtime : run the executor on its real-time driver; prints the median ratio of
             measured step wall time to simulated time x time_scale.

Trace data: Azure LLM inference trace 2023 (CC-BY 4.0), Patel et al., "Splitwise:
Efficient generative LLM inference using phase splitting", ISCA 2024.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from dynabatch.bench.runner import drive_virtual
from dynabatch.bench.workload import load_trace
from dynabatch.controller.base import LimitDecision
from dynabatch.core import ServingCore
from dynabatch.data import CONV_TRACE
from dynabatch.engines.simulated import SimulatedExecutor
from dynabatch.gate import AdmissionGate
from dynabatch.types import GenerationRequest

DEFAULT_TRACE = CONV_TRACE


class FixedLimit:
    """A trivial controller: the same limit forever (the controller package is elsewhere)."""

    name = "fixed"

    def __init__(self, limit: int) -> None:
        self._limit = limit

    def update(self, sample) -> int:
        return self._limit

    def on_request_finish(self, state) -> None:
        pass

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def decision(self) -> LimitDecision:
        return LimitDecision(self._limit, {"static": self._limit}, "static")


class Sink:
    def __init__(self) -> None:
        self.finished = 0
        self.tokens = 0
        self.ttft: list[float] = []
        self.reasons: dict[str, int] = {}

    def on_event(self, event, state) -> None:
        self.tokens += len(event.token_ids)
        if event.finished:
            self.finished += 1
            key = event.finish_reason.value if event.finish_reason else "?"
            self.reasons[key] = self.reasons.get(key, 0) + 1
            if state is not None and state.first_token_time is not None:
                self.ttft.append(state.first_token_time - state.arrival_time)


def replay(args: argparse.Namespace) -> int:
    requests = load_trace(args.trace, max_new_tokens=args.max_new_tokens).requests()
    engine = SimulatedExecutor(
        args.profile,
        max_batch_size=args.limit,
        max_num_tokens=args.max_num_tokens,
        capacity_policy=args.policy,
        seed=0,
    )
    core = ServingCore(engine, FixedLimit(args.limit), AdmissionGate())
    sink = Sink()
    n = len(requests)
    wall0 = time.perf_counter()
    iterations = drive_virtual(
        core,
        engine,
        requests,
        lambda i: sink,
        max_iterations=50_000_000,
        max_wall_s=args.budget_s * 10,
    )
    pauses = core.counters.paused_total
    wall = time.perf_counter() - wall0
    ttft = sorted(sink.ttft)
    p99 = ttft[int(0.99 * (len(ttft) - 1))] if ttft else float("nan")
    print(f"trace            {args.trace} ({n} requests)")
    print(
        f"engine           {args.profile}, {args.policy}, fixed limit {args.limit}, "
        f"kv {engine.kv_capacity.total_blocks} blocks x {engine.kv_capacity.tokens_per_block}"
    )
    print(f"finished         {sink.finished} ({sink.reasons}); rejected {core.counters.rejected}")
    print(
        f"iterations       {iterations}, pauses {pauses}, recomputed tokens "
        f"{core.counters.recomputed_tokens}"
    )
    print(f"simulated time   {engine.now():.1f} s; output tokens {sink.tokens}")
    print(f"TTFT p99         {p99:.3f} s (simulated)")
    print(f"wall time        {wall:.2f} s  ({iterations / wall:,.0f} iterations/s)")
    ok = sink.finished == n and wall < args.budget_s
    print(
        f"RESULT           {'OK' if ok else 'FAIL'}: all {n} requests finished in {wall:.1f} s "
        f"wall (budget {args.budget_s:g} s)"
    )
    return 0 if ok else 1


def realtime(args: argparse.Namespace) -> int:
    engine = SimulatedExecutor(args.profile, max_batch_size=32, seed=0)
    engine.start_realtime(args.time_scale)
    for r in range(32):
        engine.submit(GenerationRequest(r, range(200 + 10 * r), args.steps + 5, streaming=True))
    stats = []
    deadline = time.monotonic() + 120
    while len(stats) < args.steps and time.monotonic() < deadline:
        engine.poll_events(0.05)
        stats.extend(engine.drain_stats())
    engine.shutdown()
    # Timestamps are wall time / time_scale, so the gap between consecutive iterations
    # (the driver runs back to back while there is work) over iter_latency_ms (simulated)
    # is step wall time / (simulated time x scale).
    ratios = [
        (b.timestamp - a.timestamp) * 1e3 / b.iter_latency_ms
        for a, b in zip(stats, stats[1:])
        if b.iter_latency_ms > 0
    ]
    med = statistics.median(ratios)
    print(f"profile {args.profile}, time_scale {args.time_scale:g}, {len(ratios)} iterations")
    print(
        f"step wall / (simulated x scale): median {med:.4f}, p10 "
        f"{statistics.quantiles(ratios, n=10)[0]:.4f}, p90 {statistics.quantiles(ratios, n=10)[-1]:.4f}"
    )
    ok = abs(med - 1.0) <= 0.10
    print(f"RESULT {'OK' if ok else 'FAIL'}: median ratio within 10 % of 1.0")
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("replay")
    r.add_argument("--trace", default=str(DEFAULT_TRACE))
    r.add_argument("--profile", default="llama-2-7b-a100-80gb")
    r.add_argument("--policy", default="max_utilization")
    r.add_argument("--limit", type=int, default=64)
    r.add_argument("--max-new-tokens", type=int, default=1024)
    r.add_argument("--max-num-tokens", type=int, default=8192)
    r.add_argument("--budget-s", type=float, default=60.0)
    r.set_defaults(func=replay)
    t = sub.add_parser("realtime")
    t.add_argument("--profile", default="llama-2-7b-a100-80gb")
    t.add_argument("--time-scale", type=float, default=1.0)
    t.add_argument("--steps", type=int, default=200)
    t.set_defaults(func=realtime)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

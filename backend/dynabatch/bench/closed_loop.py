"""Closed-loop clients and engine options for `dynabatch bench`.

`--concurrency N`: N clients, each sends its next request the moment its previous one
finishes (zero think time), as `trtllm-serve`'s benchmark_serving / genai-perf do with a
fixed concurrency. Requests are taken from the workload in order; its arrival times
are ignored. `--engine-opt KEY=VALUE` (repeatable) sets a simulated-engine parameter
(the config.pbtxt names, typed and range-checked by the same ParamSpecs).

Same objects as every other run: the SimulatedExecutor, the controller, the
AdmissionGate and the ServingCore the Triton model builds; only the arrivals differ.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any

from ..core import ServingCore
from ..gate import AdmissionGate
from ..params import ConfigError
from ..types import IterationStats, RequestState, TokenEvent
from .metrics import RequestRecord, Slo, summarize
from .runner import (
    PolicySpec,
    RunResult,
    Timeline,
    _Sink,
    make_engine,
    make_policy_controller,
    policy_params,
)
from .workload import Workload

# engine keyword -> config.pbtxt parameter (SIMULATED_PARAMS) it is checked against
ENGINE_OPTS = {
    "max_num_tokens": "max_num_tokens",
    "tokens_per_block": "tokens_per_block",
    "kv_cache_free_gpu_mem_fraction": "kv_cache_free_gpu_mem_fraction",
    "max_tokens_in_paged_kv_cache": "max_tokens_in_paged_kv_cache",
    "enable_chunked_context": "enable_chunked_context",
    "context_blocks": "sim_context_blocks",
    "seed": "sim_seed",
}
# config.pbtxt names a run sets elsewhere
SET_ELSEWHERE = {
    "sim_profile": "--profile",
    "batch_scheduler_policy": "--policies (each policy names its capacity policy)",
    "sim_time_scale": "nothing: the benchmark runs on the virtual clock",
}


def parse_engine_opts(items: list[str] | None) -> dict[str, Any]:
    """`["max_num_tokens=8192", ...]` -> SimulatedExecutor keywords; clear error otherwise."""
    from ..engines.simulated import SIMULATED_PARAMS

    specs = {s.name: s for s in SIMULATED_PARAMS}
    by_config_name = {param: kw for kw, param in ENGINE_OPTS.items()}
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = by_config_name.get(key.strip(), key.strip())  # config.pbtxt names work too
        if key in SET_ELSEWHERE:
            raise ConfigError("--engine-opt", item, f"{key} is set by {SET_ELSEWHERE[key]}")
        if not sep or key not in ENGINE_OPTS:
            raise ConfigError(
                "--engine-opt", item, "KEY=VALUE with KEY one of " + ", ".join(ENGINE_OPTS)
            )
        parsed = specs[ENGINE_OPTS[key]].parse(value.strip())
        if key == "max_tokens_in_paged_kv_cache" and not parsed:
            parsed = None  # 0 = derive from GPU memory, as in config.pbtxt
        out[key] = parsed
    return out


class _ClientSink(_Sink):
    """Records timings and, on the final event, lets its client send the next request."""

    __slots__ = ("loop",)

    def __init__(self, record: RequestRecord, loop: _ClosedLoop) -> None:
        super().__init__(record)
        self.loop = loop

    def on_event(self, event: TokenEvent, state: RequestState | None) -> None:
        super().on_event(event, state)
        if event.finished:
            self.loop.ready.append(event.time)


class _ClosedLoop:
    def __init__(self, workload: Workload, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"--concurrency must be >= 1, got {concurrency}")
        self.templates = workload.requests()
        self.next = 0
        self.ready: list[float] = [0.0] * min(concurrency, len(self.templates))
        self.records: list[RequestRecord] = []

    def issue(self, core: ServingCore) -> None:
        """Every client whose previous request finished sends its next one now."""
        ready, self.ready = self.ready, []
        for t in ready:
            if self.next >= len(self.templates):
                return
            req = replace(self.templates[self.next], arrival_time=t)
            self.next += 1
            rec = RequestRecord(arrival=t, prompt_tokens=req.prompt_len)
            self.records.append(rec)
            core.submit(req, _ClientSink(rec, self))


def run_closed_loop(
    workload: Workload,
    profile: str,
    spec: PolicySpec,
    *,
    concurrency: int,
    slo: Slo,
    max_batch_size: int = 256,
    engine_kw: dict | None = None,
    controller_params: dict | None = None,
    max_wall_s: float = 600.0,
) -> RunResult:
    """Serve the workload with `concurrency` closed-loop clients; the summary row."""
    wall0 = time.monotonic()
    mbs = spec.max_batch_size or max_batch_size
    engine = make_engine(
        profile, capacity_policy=spec.capacity_policy, max_batch_size=mbs, engine_kw=engine_kw or {}
    )
    try:
        params = policy_params(spec, slo, controller_params)
        loop = _ClosedLoop(workload, concurrency)
        controller = make_policy_controller(
            spec, params, max_batch_size=mbs, engine=engine, admission_order=loop.templates
        )
        core = ServingCore(engine, controller, AdmissionGate())
        timeline = Timeline()
        busy_s = batch_area = 0.0
        last: IterationStats | None = None
        iterations = 0
        while True:
            loop.issue(core)
            core.step()
            stats = core.last_stats
            if stats is not None and stats is not last:
                last = stats
                busy_s += stats.iter_latency_ms / 1000.0
                batch_area += stats.iter_latency_ms / 1000.0 * stats.num_active_requests
                timeline.add(
                    stats.timestamp, controller.limit, stats.num_active_requests, stats.kv_occupancy
                )
            if engine.has_work:
                engine.step()
                iterations += 1
            elif core.idle and not loop.ready:
                break
            elif not core.running and len(core.gate) and not loop.ready:
                raise RuntimeError(
                    f"{spec.name}: {len(core.gate)} requests wait with an idle engine and "
                    f"limit {core.controller.limit}: the policy stalled"
                )
            if time.monotonic() - wall0 > max_wall_s:
                raise RuntimeError(f"{spec.name}: closed-loop run exceeded {max_wall_s:.0f} s wall")
    finally:
        engine.shutdown()  # an adapter on the stand-in runs threads of its own
    row = {
        "policy": spec.name,
        "controller": spec.policy,
        "capacity_policy": spec.capacity_policy,
        "static": spec.static,
        "engine_max_batch": mbs,
        "profile": profile,
        "workload": f"{workload.name}/closed-loop-{concurrency}",
        "max_new_tokens": workload.max_new_tokens,
    }
    row.update(summarize(loop.records, None, slo))
    row.update(
        {
            "mean_batch": batch_area / busy_s if busy_s else 0.0,
            "paused": core.counters.paused_total,
            "recomputed_tokens": core.counters.recomputed_tokens,
            "iterations": iterations,
            "sim_wall_s": round(time.monotonic() - wall0, 3),
        }
    )
    return RunResult(row=row, timeline=timeline, records=loop.records)


CLOSED_LOOP_COLUMNS = (
    ("policy", "policy", "{}"),
    ("profile", "profile", "{}"),
    ("output_tok_s", "out tok/s", "{:.1f}"),
    ("ttft_p50_s", "TTFT p50 s", "{:.2f}"),
    ("tpot_p50_s", "TPOT p50 ms", "{:.0f}", 1e3),
    ("tpot_p99_s", "TPOT p99 ms", "{:.0f}", 1e3),
    ("e2e_p99_s", "E2E p99 s", "{:.1f}"),
    ("paused", "pauses", "{}"),
    ("recomputed_tokens", "recomputed tok", "{}"),
    ("mean_batch", "mean batch", "{:.1f}"),
)


def format_rows(rows: list[dict]) -> str:
    from .report import format_table

    scaled = []
    for r in rows:
        r2 = dict(r)
        for key, _, _, *scale in CLOSED_LOOP_COLUMNS:
            if scale and isinstance(r2.get(key), float):
                r2[key] = r2[key] * scale[0]
        scaled.append(r2)
    return format_table(scaled, [c[:3] for c in CLOSED_LOOP_COLUMNS])


def run_bench(args, workloads: list[Workload]) -> int:
    """`dynabatch bench` with --concurrency and/or --engine-opt (sequential runs)."""
    from .matrix import DEFAULT_PROFILE, slo_for
    from .report import write_json
    from .runner import run_policy
    from .suite import policy_lineup, select

    try:
        engine_kw = parse_engine_opts(args.engine_opt)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for wl in workloads:
        for prof in args.profile or [DEFAULT_PROFILE]:
            names = (args.policies or "").split(",") if args.policies else None
            for spec in select(policy_lineup(prof), names):
                if args.concurrency:
                    res = run_closed_loop(
                        wl,
                        prof,
                        spec,
                        concurrency=args.concurrency,
                        slo=slo_for(args, prof),
                        engine_kw=engine_kw,
                    )
                else:
                    res = run_policy(wl, prof, spec, slo=slo_for(args, prof), engine_kw=engine_kw)
                rows.append(res.row)
                print(f"{spec.name}: done in {res.row['sim_wall_s']:.1f} s wall", file=sys.stderr)
    print(format_rows(rows))
    if args.json:
        write_json(rows, args.json, {"command": "bench", "argv": sys.argv[1:]})
    return 0

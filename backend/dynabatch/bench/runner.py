"""Replay a workload through the server's own ServingCore on the virtual clock.

Per run: a SimulatedExecutor (virtual clock), the controller from
`controller.make_controller` (or the benchmark-only oracle), an AdmissionGate and a
ServingCore, i.e. exactly the objects the Triton model builds. The loop only feeds
arrivals, steps the engine one iteration at a time and calls `core.step()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core import ServingCore
from ..gate import AdmissionGate
from ..queue_order import QueueOrder, QueueOrderConfig, make_queue_order
from ..types import FinishReason, GenerationRequest, IterationStats, RequestState, TokenEvent
from .metrics import RequestRecord, Slo, summarize
from .oracle import OracleController
from .slo_watch import SloMissWatch
from .tenants import per_tenant
from .workload import Workload

GNE, MAXU = "guaranteed_no_evict", "max_utilization"


@dataclass(frozen=True)
class PolicySpec:
    """One column of the comparison: a controller policy under an engine capacity policy."""

    name: str  # label in tables, e.g. "static-64/gne", "adaptive"
    policy: str  # controller policy, or "oracle"
    capacity_policy: str = MAXU
    params: tuple = ()  # extra controller parameters as (key, value) pairs
    max_batch_size: int | None = None  # engine max batch; None = the run's default
    static: bool = False  # counts as a static limit (for "best static")


class _Sink:
    """Records one request's timings for the metrics (the response sender's stand-in)."""

    __slots__ = ("record", "watch")

    def __init__(self, record: RequestRecord, watch: SloMissWatch | None = None) -> None:
        self.record = record
        self.watch = watch

    def on_event(self, event: TokenEvent, state: RequestState | None) -> None:
        rec = self.record
        if rec.admitted is None and state is not None:
            rec.queued, rec.admitted = state.arrival_time, state.admitted_time
        if event.token_ids:
            if rec.first_token is None:
                rec.first_token = event.time
                if self.watch is not None:
                    self.watch.on_first_token(rec)
            rec.output_tokens += len(event.token_ids)
        if event.finished:
            rec.finish = event.time
            rec.rejected = event.finish_reason == FinishReason.REJECTED
            rec.completed = event.finish_reason in (
                FinishReason.LENGTH,
                FinishReason.EOS,
                FinishReason.END_ID,
            )
            if self.watch is not None:
                self.watch.on_finish(rec)


@dataclass
class Timeline:
    """Per-iteration samples for plots, thinned to at most `max_points`."""

    max_points: int = 4000
    t: list = field(default_factory=list)
    limit: list = field(default_factory=list)
    running: list = field(default_factory=list)
    kv: list = field(default_factory=list)
    _every: int = 1
    _n: int = 0

    def add(self, t: float, limit: int, running: int, kv: float) -> None:
        self._n += 1
        if self._n % self._every:
            return
        self.t.append(t), self.limit.append(limit), self.running.append(running), self.kv.append(kv)
        if len(self.t) >= self.max_points:  # halve resolution, keep going
            for lst in (self.t, self.limit, self.running, self.kv):
                del lst[1::2]
            self._every *= 2

    def as_dict(self) -> dict:
        return {"t": self.t, "limit": self.limit, "running": self.running, "kv": self.kv}


@dataclass
class RunResult:
    row: dict
    timeline: Timeline
    records: list[RequestRecord]
    # what held the gate back from each pass on (core.admission_block: "limit",
    # "pacing", or None when nothing waited or nothing held), as (time, cause) at each
    # change: a request's gate wait [queued, admitted] splits by cause (held_within)
    held_changes: list[tuple[float, str | None]] = field(default_factory=list)


def held_within(
    changes: Sequence[tuple[float, str | None]], start: float, end: float
) -> dict[str, float]:
    """Seconds of [start, end] during which the gate was held by each cause."""
    out = {"limit": 0.0, "pacing": 0.0}
    for k, (t, cause) in enumerate(changes):
        t_next = changes[k + 1][0] if k + 1 < len(changes) else end
        lo, hi = max(t, start), min(t_next, end)
        if cause is not None and hi > lo:
            out[cause] += hi - lo
    return out


def make_engine(profile: str, *, capacity_policy: str, max_batch_size: int, engine_kw: dict):
    """engine_kw may name `engine` (a TensorRT-LLM adapter) and `standin` (run it on the
    stand-in); see runtime.make_bench_engine."""
    from ..runtime import make_bench_engine

    return make_bench_engine(
        profile, max_batch_size=max_batch_size, capacity_policy=capacity_policy, **engine_kw
    )


def make_policy_controller(
    spec: PolicySpec, params: dict, *, max_batch_size: int, engine, admission_order
):
    if spec.policy == "oracle":
        return OracleController(
            admission_order,
            getattr(engine, "clairvoyant_kv_capacity", None) or engine.kv_capacity,
            max_batch_size,
            getattr(engine, "max_num_tokens", 8192),
        )
    from ..controller import make_controller  # built by the controller engineer

    return make_controller(
        spec.policy, params, max_batch_size=max_batch_size, kv_capacity=engine.kv_capacity
    )


def drive_virtual(
    core: ServingCore,
    engine: Any,
    requests: Sequence[GenerationRequest],
    sink_for: Callable[[int], Any],
    *,
    on_pass: Callable[[], bool | None] | None = None,
    name: str = "run",
    max_iterations: int = 20_000_000,
    max_wall_s: float = 600.0,
) -> int:
    """Serve `requests` (in arrival order) on a simulated engine's virtual clock.

    Each pass submits what has arrived by `engine.now()`, steps the core (dispatch,
    controller update, admission), calls `on_pass` (a true answer ends the run there),
    then runs one engine iteration, or jumps an idle clock to the next arrival. Returns
    the number of engine iterations; raises when a policy stalls (requests wait, engine
    idle) or a bound is exceeded.
    """
    wall0 = time.monotonic()
    i, n, iterations = 0, len(requests), 0
    while True:
        now = engine.now()
        while i < n and requests[i].arrival_time <= now:
            core.submit(requests[i], sink_for(i))
            i += 1
        core.step()
        if on_pass is not None and on_pass():
            return iterations
        if engine.has_work:
            engine.step()
            iterations += 1
        elif i < n:
            engine.advance_to(requests[i].arrival_time)
        elif core.idle:
            return iterations
        elif not core.running and len(core.gate):
            raise RuntimeError(
                f"{name}: {len(core.gate)} requests wait with an idle "
                f"engine and limit {core.controller.limit}: the policy stalled"
            )
        if iterations > max_iterations or time.monotonic() - wall0 > max_wall_s:
            raise RuntimeError(
                f"{name}: run exceeded its bound ({iterations} iterations, "
                f"{time.monotonic() - wall0:.0f} s wall)"
            )


def policy_params(
    spec: PolicySpec, slo: Slo, controller_params: dict | None = None
) -> dict[str, Any]:
    """The controller parameters of a benchmark run (open or closed loop): the run's SLO,
    as a deployment would configure it, then the caller's, then the policy's own."""
    return {
        "tpot_sla_ms": slo.tpot_s * 1000.0,
        "ttft_sla_s": slo.ttft_s,
        **(controller_params or {}),
        **dict(spec.params),
    }


def run_policy(
    workload: Workload,
    profile: str,
    spec: PolicySpec,
    *,
    slo: Slo,
    max_batch_size: int = 256,
    engine_kw: dict | None = None,
    controller_params: dict | None = None,
    max_wall_s: float = 600.0,
    max_iterations: int = 20_000_000,
    queue_order: QueueOrderConfig | None = None,
    order: QueueOrder | None = None,
    stop_at_slo_miss: bool = False,
) -> RunResult:
    """Serve every request of `workload` to completion; return the summary row.

    `queue_order`: the gate's admission order (default: priority, no aging), built by
    the same `make_queue_order` as the Triton model's. `order` replaces the order object
    (aging and tenant limits still from `queue_order`): for benchmark-only analyses, such
    as an order that knows each request's true output length. `stop_at_slo_miss`
    (capacity probes): end the run once P99 TTFT or TPOT is certain to miss `slo`
    (slo_watch.py); the row then says `slo_missed_early` and its figures cover only
    what was served by then."""
    wall0 = time.monotonic()
    mbs = spec.max_batch_size or max_batch_size
    engine = make_engine(
        profile,
        capacity_policy=spec.capacity_policy,
        max_batch_size=mbs,
        engine_kw=dict(engine_kw or {}),
    )
    requests = workload.requests()
    params = policy_params(spec, slo, controller_params)
    # The core's own admission check decides what the gate will ever admit (the
    # oracle needs that order; it must not re-implement the rule).
    probe = ServingCore(engine, _NullController(), AdmissionGate())
    admissible = [r for r in requests if probe.admission_error(r) is None]
    controller = make_policy_controller(
        spec, params, max_batch_size=mbs, engine=engine, admission_order=admissible
    )
    qo = queue_order or QueueOrderConfig()
    gate = AdmissionGate(
        order=order or make_queue_order(qo),
        aging_s=qo.aging_s,
        tenant_queue_limits=qo.tenant_queue_limits,
    )
    core = ServingCore(engine, controller, gate)
    records = [
        RequestRecord(arrival=r.arrival_time, prompt_tokens=r.prompt_len, tenant=r.tenant)
        for r in requests
    ]
    timeline = Timeline()
    busy_s = batch_area = kv_area = 0.0
    engine_queue_area = 0.0  # time-integral of requests admitted but not yet started
    # engine time during which requests waited in the gate, by what held them back
    # (core.admission_block): no order can admit a request while either holds
    held_s = {"limit": 0.0, "pacing": 0.0}
    held_by: str | None = None
    held_changes: list[tuple[float, str | None]] = []
    last_stats: IterationStats | None = None
    watch = SloMissWatch(records, slo, len(admissible)) if stop_at_slo_miss else None
    # Did the controller's limit ever hold a request back (the gate still held one
    # after admission), and the most requests ever admitted at once: a static limit
    # that never bound gives the same run as any limit >= that peak (probe_memo.py).
    peak_running, limit_bound = 0, False

    def observe() -> bool:
        nonlocal last_stats, busy_s, batch_area, kv_area, engine_queue_area
        nonlocal peak_running, limit_bound, held_by
        if len(core.running) > peak_running:
            peak_running = len(core.running)
        if not limit_bound and len(gate):
            limit_bound = True
        stats = core.last_stats
        if stats is not None and stats is not last_stats:
            last_stats = stats
            dt = stats.iter_latency_ms / 1000.0
            busy_s += dt
            batch_area += dt * stats.num_active_requests
            kv_area += dt * stats.kv_occupancy
            engine_queue_area += dt * stats.num_queued_requests
            if held_by is not None:  # this iteration ran while the last pass held requests
                held_s[held_by] += dt
            timeline.add(
                stats.timestamp, controller.limit, stats.num_active_requests, stats.kv_occupancy
            )
        held_by = core.admission_block() if len(gate) else None
        if (held_changes[-1][1] if held_changes else None) != held_by:
            held_changes.append((engine.now(), held_by))
        return watch is not None and watch.missed(engine.now())

    try:
        iterations = drive_virtual(
            core,
            engine,
            requests,
            lambda i: _Sink(records[i], watch),
            on_pass=observe,
            name=spec.name,
            max_iterations=max_iterations,
            max_wall_s=max_wall_s - (time.monotonic() - wall0),
        )
    finally:
        engine.shutdown()  # an adapter on the stand-in runs threads of its own
    row = {
        "policy": spec.name,
        "controller": spec.policy,
        "capacity_policy": spec.capacity_policy,
        "static": spec.static,
        "engine_max_batch": mbs,
        "profile": profile,
        "workload": workload.name,
        "max_new_tokens": workload.max_new_tokens,
    }
    row.update(summarize(records, None, slo))
    row["queue_policy"] = qo.policy
    if watch is not None:
        row["slo_missed_early"] = watch.tripped
    waits = [r.first_token - r.arrival for r in records if r.first_token is not None]
    row["ttft_max_s"] = max(waits, default=0.0)
    # how much of TTFT the admission order can act on: time spent waiting in the gate
    row["gate_waited_frac"] = gate.admitted_after_wait / gate.admitted if gate.admitted else 0.0
    row["gate_wait_mean_s"] = gate.admission_wait_sum_s / gate.admitted if gate.admitted else 0.0
    # ... and the time spent admitted but waiting inside the engine's own (FCFS) queue,
    # which no gate order reaches (Little's law: mean wait = queue-length area / arrivals)
    row["engine_queue_wait_mean_s"] = engine_queue_area / gate.admitted if gate.admitted else 0.0
    # share of the engine's busy time during which the gate held requests back, by cause
    row["gate_held_by_limit_frac"] = held_s["limit"] / busy_s if busy_s else 0.0
    row["gate_held_by_pacing_frac"] = held_s["pacing"] / busy_s if busy_s else 0.0
    if any(r.tenant for r in records):
        row["tenants"] = per_tenant(records, row["duration_s"], slo)
    row.update(
        {
            "mean_batch": batch_area / busy_s if busy_s else 0.0,
            "mean_kv_occupancy": kv_area / busy_s if busy_s else 0.0,
            "paused": core.counters.paused_total,
            "recomputed_tokens": core.counters.recomputed_tokens,
            "iterations": iterations,
            "peak_running": peak_running,
            "limit_bound": limit_bound,
            "sim_wall_s": round(time.monotonic() - wall0, 3),
        }
    )
    return RunResult(row=row, timeline=timeline, records=records, held_changes=held_changes)


class _NullController:
    """Only for the admission-check probe core (it never steps)."""

    name = "null"
    limit = 0
    decision = None

    def update(self, sample) -> int:
        return 0

    def on_request_finish(self, state) -> None:
        pass

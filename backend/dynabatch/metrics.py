"""Triton /metrics for the model: TensorRT-LLM's metric families plus the controller's own.

Families and label values follow tensorrtllm_backend's, so its dashboards keep working.
Every MetricFamily is kept referenced for the model's lifetime: once one is
garbage-collected, Metric.set() raises "Invalid metric operation".
`update()` runs on the serving-loop thread, at most every metrics_interval_ms.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from .core import ServingCore
from .telemetry import GpuTelemetry
from .types import IterationStats

TRTLLM_FAMILIES = {
    # family: (description, label key, {label value: IterationStats reader})
    "nv_trt_llm_request_metrics": (
        "TRT LLM request metrics",
        "request_type",
        {
            "context": lambda s, core: s.num_context_requests,
            "scheduled": lambda s, core: s.num_scheduled_requests,
            "max": lambda s, core: s.max_num_active_requests,
            "active": lambda s, core: s.num_active_requests,
            # queued inside the engine plus waiting in our own admission queue
            "waiting": lambda s, core: s.num_queued_requests + len(core.gate),
        },
    ),
    "nv_trt_llm_kv_cache_block_metrics": (
        "TRT LLM KV cache block metrics",
        "kv_cache_block_type",
        {
            "max": lambda s, core: s.max_num_blocks,
            "free": lambda s, core: s.free_num_blocks,
            "used": lambda s, core: s.used_num_blocks,
            "tokens_per": lambda s, core: s.tokens_per_block,
        },
    ),
    "nv_trt_llm_inflight_batcher_metrics": (
        "TRT LLM inflight_batcher-specific metrics",
        "inflight_batcher_specific_metric",
        {
            "total_context_tokens": lambda s, core: s.num_ctx_tokens,
            "generation_requests": lambda s, core: s.num_gen_requests,
            "micro_batch_id": lambda s, core: 0,
            "paused_requests": lambda s, core: s.num_paused_requests,
        },
    ),
    "nv_trt_llm_general_metrics": (
        "General TRT LLM metrics",
        "general_type",
        {
            "iteration_counter": lambda s, core: s.iter,
            "timestamp": lambda s, core: int(time.time()),
        },
    ),
}


def _idle_stats(core: ServingCore) -> IterationStats:
    """Iteration stats of an engine that holds nothing. An engine that learns its KV
    size only from its first iteration (TensorRT-LLM) reports 0 blocks until then."""
    cap = core.engine.kv_capacity  # None until the engine knows its pool: report 0 blocks
    blocks = cap.total_blocks if cap is not None else 0
    return IterationStats(
        iter=0,
        timestamp=0.0,
        iter_latency_ms=0.0,
        num_active_requests=0,
        num_queued_requests=0,
        num_completed_requests=0,
        max_num_active_requests=core.engine.max_batch_size,
        max_num_blocks=blocks,
        free_num_blocks=blocks,
        used_num_blocks=0,
        tokens_per_block=cap.tokens_per_block if cap is not None else 0,
    )


def exported_stats(core: ServingCore) -> IterationStats:
    """The iteration stats /metrics shows for `core` now (the fleet's scraper reads the
    same): the idle state before the first iteration, and once the core holds nothing."""
    s = core.last_stats
    if s is None:
        return _idle_stats(core)
    if not core.running and not len(core.gate):
        # An idle engine runs no iterations, so its last stats still show the last
        # request. The core holds none now: every request got its final event, which
        # (Engine protocol) frees its KV blocks; report that idle state.
        return dataclasses.replace(
            s,
            num_active_requests=0,
            num_queued_requests=0,
            num_scheduled_requests=0,
            num_context_requests=0,
            num_gen_requests=0,
            num_paused_requests=0,
            num_ctx_tokens=0,
            used_num_blocks=0,
            free_num_blocks=s.max_num_blocks,
        )
    return s


REQUEST_OUTCOMES = ("submitted", "accepted", "completed", "cancelled", "failed")


class TritonMetrics:
    def __init__(
        self, pb_utils: Any, model_name: str, model_version: str, tpot_smoothing: float = 0.3
    ) -> None:
        fam = pb_utils.MetricFamily
        self._labels = {"model": model_name, "version": str(model_version)}
        self._families: list[Any] = []  # keeps every family alive (see module doc)
        self._trtllm: list[tuple[Any, Any]] = []  # (metric, reader)
        for name, (desc, key, readers) in TRTLLM_FAMILIES.items():
            family = self._family(fam, name, desc, fam.GAUGE)
            for value, reader in readers.items():
                self._trtllm.append((family.Metric(labels={key: value, **self._labels}), reader))
        g = fam.GAUGE
        self._limit = self._gauge(
            fam, "dynabatch_batch_limit", "in-flight batch limit set by the controller", g
        )
        self._bound_family = self._family(
            fam, "dynabatch_batch_bound", "each controller component's bound on the batch limit", g
        )
        self._bounds: dict[str, Any] = {}
        self._tpot = self._gauge(
            fam,
            "dynabatch_tpot_ms",
            "smoothed time per output token (mean decode step time), ms",
            g,
        )
        self._queue = self._gauge(
            fam, "dynabatch_queue_length", "requests waiting in the model's admission queue", g
        )
        # Fresh between iterations (the nv_trt_llm_* counts follow iteration stats):
        # with dynabatch_batch_limit it gives a router the headroom (fleet/routers.py).
        self._running = self._gauge(
            fam, "dynabatch_running_requests", "requests admitted to the engine", g
        )
        c = fam.COUNTER
        self._paused = self._gauge(
            fam, "dynabatch_paused_total", "requests paused (evicted) by the engine", c
        )
        self._recomputed = self._gauge(
            fam, "dynabatch_recomputed_tokens_total", "tokens prefilled again after a pause", c
        )
        self._rejected = self._gauge(
            fam,
            "dynabatch_rejected_total",
            "requests rejected before admission (queue full, invalid)",
            c,
        )
        req = self._family(fam, "dynabatch_requests_total", "requests by outcome", c)
        self._requests = {
            o: req.Metric(labels={"outcome": o, **self._labels}) for o in REQUEST_OUTCOMES
        }
        self._counted: dict[str, float] = {}
        self._tpot_ewma: float | None = None
        self._tpot_weight = tpot_smoothing
        self._last_iter: tuple[int, float] | None = None  # (iter, timestamp)
        self.extra_rejected = 0  # rejected in execute() before reaching the core
        # GPU telemetry: gauges exist only where NVML answers (CPU machines: none, and
        # GpuTelemetry logs once and never asks again).
        self._gpu = GpuTelemetry()
        self._gpu_gauges: dict[str, Any] = {}
        if self._gpu.available:
            gpu_family = self._family(fam, "dynabatch_gpu", "GPU telemetry from NVML", g)
            for key in (
                "gpu_memory_used_bytes",
                "gpu_memory_total_bytes",
                "gpu_utilization_pct",
                "gpu_memory_utilization_pct",
            ):
                self._gpu_gauges[key] = gpu_family.Metric(
                    labels={"gpu_metric": key, **self._labels}
                )

    def _family(self, fam, name, desc, kind):
        family = fam(name=name, description=desc, kind=kind)
        self._families.append(family)
        return family

    def _gauge(self, fam, name, desc, kind):
        return self._family(fam, name, desc, kind).Metric(labels=self._labels)

    def _advance(self, key: str, metric: Any, total: float) -> None:
        """Counters only go up: add what is new since the last update."""
        delta = total - self._counted.get(key, 0)
        if delta > 0:
            metric.increment(delta)
            self._counted[key] = total

    def update(self, core: ServingCore) -> None:
        s = core.last_stats
        if s is None:
            # No iteration yet (a fresh load or reload): show this engine's idle state,
            # never what a previous instance of the model left in Triton's registry.
            self._trtllm_set(_idle_stats(core), core)
        else:
            s = exported_stats(core)
        if s is not None:
            self._trtllm_set(s, core)
            self._update_tpot(s)
        decision = core.controller.decision
        self._limit.set(decision.limit)
        for component, bound in decision.bounds.items():
            if component not in self._bounds:
                self._bounds[component] = self._bound_family.Metric(
                    labels={"component": component, **self._labels}
                )
            if bound is not None and bound == bound and abs(bound) != float("inf"):
                self._bounds[component].set(bound)
        self._queue.set(len(core.gate))
        self._running.set(len(core.running))
        if self._tpot_ewma is not None:
            self._tpot.set(self._tpot_ewma)
        if self._gpu_gauges:
            sample = self._gpu.sample()
            core.gpu_sample = sample  # controllers see it in ControlInput.gpu
            if sample is not None:
                for key, value in sample.metrics().items():
                    self._gpu_gauges[key].set(value)
        n = core.counters
        self._advance("paused", self._paused, n.paused_total)
        self._advance("recomputed", self._recomputed, n.recomputed_tokens)
        self._advance("rejected", self._rejected, n.rejected + self.extra_rejected)
        totals = {
            "submitted": n.submitted + self.extra_rejected,
            "accepted": n.accepted,
            "completed": n.completed,
            "cancelled": n.cancelled,
            "failed": n.failed,
        }
        for outcome, metric in self._requests.items():
            self._advance("req_" + outcome, metric, totals[outcome])

    def _trtllm_set(self, s: IterationStats, core: ServingCore) -> None:
        for metric, reader in self._trtllm:
            metric.set(reader(s, core))

    def _update_tpot(self, s) -> None:
        """Mean step time over the iterations since the last update, while decoding."""
        last = self._last_iter
        self._last_iter = (s.iter, s.timestamp)
        if last is None or s.iter <= last[0] or s.num_gen_requests == 0:
            return
        step_ms = (s.timestamp - last[1]) * 1000.0 / (s.iter - last[0])
        w = self._tpot_weight
        self._tpot_ewma = (
            step_ms
            if self._tpot_ewma is None
            else (self._tpot_ewma + w * (step_ms - self._tpot_ewma))
        )

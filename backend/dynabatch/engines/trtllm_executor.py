"""TensorRT-LLM Executor API (`tensorrt_llm.bindings.executor`, 1.2.x) behind the Engine
protocol.

The executor runs its own loop on the GPU; this adapter is thin and threadless:
`submit` enqueues, `poll_events` is `await_responses(timeout)`, `drain_stats` is
`get_latest_iteration_stats()`. The executor is built with `max_batch_size` = the
controller's upper bound; the controller then limits in-flight requests by admission.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..params import ConfigError, ParamSpec, parse_params
from ..types import FinishReason, GenerationRequest, IterationStats, TokenEvent
from .base import EngineError, KvCapacity
from .trtllm_common import (
    COMMON_PARAMS,
    EngineClock,
    StatsClock,
    check_model_path,
    import_tensorrt_llm,
    initial_capacity,
    sampling_fields,
    stats_from_executor,
)
from .trtllm_parallel import (
    EXECUTOR_PARALLEL_PARAMS,
    PARALLEL_PARAMS,
    executor_parallel_config,
)

log = logging.getLogger("dynabatch.engines.trtllm_executor")

TRTLLM_EXECUTOR_PARAMS: list[ParamSpec] = (
    COMMON_PARAMS + PARALLEL_PARAMS + EXECUTOR_PARALLEL_PARAMS  # multi-GPU: trtllm_parallel.py
)

# TensorRT-LLM FinishReason name -> ours (STOP_WORDS: dynabatch sends none; treat as EOS
# of the model, like END_ID).
_FINISH = {
    "END_ID": FinishReason.END_ID,
    "STOP_WORDS": FinishReason.END_ID,
    "LENGTH": FinishReason.LENGTH,
    "CANCELLED": FinishReason.CANCELLED,
    "NOT_FINISHED": FinishReason.LENGTH,
}


def build_executor_config(tle: Any, p: Mapping[str, Any], max_batch_size: int) -> Any:
    """The ExecutorConfig for parsed parameters `p` (module `tle` = bindings.executor)."""
    policy = {
        "max_utilization": tle.CapacitySchedulerPolicy.MAX_UTILIZATION,
        "guaranteed_no_evict": tle.CapacitySchedulerPolicy.GUARANTEED_NO_EVICT,
    }
    kv = tle.KvCacheConfig(
        enable_block_reuse=p["enable_kv_cache_reuse"],
        max_tokens=p["max_tokens_in_paged_kv_cache"] or None,
        free_gpu_memory_fraction=p["kv_cache_free_gpu_mem_fraction"],
    )
    kwargs: dict[str, Any] = dict(
        max_beam_width=p["max_beam_width"],
        scheduler_config=tle.SchedulerConfig(policy[p["batch_scheduler_policy"]]),
        kv_cache_config=kv,
        enable_chunked_context=p["enable_chunked_context"],
        iter_stats_max_iterations=p["iter_stats_max_iterations"],
        max_batch_size=max_batch_size,
    )
    if p["max_num_tokens"]:
        kwargs["max_num_tokens"] = p["max_num_tokens"]
    parallel = executor_parallel_config(tle, p)
    if parallel is not None:
        kwargs["parallel_config"] = parallel
    return tle.ExecutorConfig(**kwargs)


class TrtllmExecutorEngine:
    """Engine over a `tensorrt_llm.bindings.executor.Executor`."""

    def __init__(
        self,
        executor: Any,
        tle: Any,
        *,
        max_batch_size: int,
        kv_capacity: KvCapacity | None,
        stream_tokens: bool = True,
        max_beam_width: int = 1,
        clock: Callable[[], float] | None = None,
        max_num_tokens: int | None = None,
    ) -> None:
        self._ex = executor
        self._tle = tle
        self.max_batch_size = max_batch_size
        # the most tokens of one iteration when config.pbtxt sets it (None: the engine
        # build's own, which the executor does not tell): the serving core passes no
        # more prompt tokens per iteration than that (core._prefill_allowance)
        self.max_num_tokens = max_num_tokens
        self.kv_capacity = kv_capacity
        self._stream_tokens = stream_tokens
        self._max_beam_width = max_beam_width
        # engine time: seconds since start; a benchmark on the stand-in passes its virtual clock
        self._now = clock or EngineClock().now
        self._stats_clock = StatsClock()
        self._to_ours: dict[int, int] = {}  # executor request id -> our request id
        self._to_theirs: dict[int, int] = {}
        self._shut = False

    def now(self) -> float:
        return self._now()

    def submit(self, request: GenerationRequest) -> None:
        if self._shut:
            raise EngineError("the TensorRT-LLM executor is shut down")
        tle = self._tle
        sp = request.sampling
        if sp.beam_width > self._max_beam_width:
            raise EngineError(
                f"beam_width {sp.beam_width} exceeds max_beam_width {self._max_beam_width}"
            )
        # Beam search rewrites earlier tokens, so token deltas are unsound: one final answer.
        streaming = sp.beam_width == 1 and (request.streaming or self._stream_tokens)
        try:
            req = tle.Request(
                list(int(t) for t in request.prompt_ids),
                int(request.max_new_tokens),
                streaming=streaming,
                sampling_config=tle.SamplingConfig(sp.beam_width, **sampling_fields(sp)),
                output_config=tle.OutputConfig(exclude_input_from_output=True),
                end_id=request.end_id,
                pad_id=request.pad_id,
                client_id=int(request.request_id),
            )
            theirs = self._ex.enqueue_request(req)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise EngineError(str(exc)) from exc
        self._to_ours[theirs] = request.request_id
        self._to_theirs[request.request_id] = theirs

    def poll_events(self, timeout: float = 0.0) -> list[TokenEvent]:
        if self._shut:
            return []
        try:
            responses = self._ex.await_responses(
                timeout=datetime.timedelta(seconds=max(0.0, timeout))
            )
        except RuntimeError as exc:
            raise EngineError(f"await_responses failed: {exc}") from exc
        now = self.now()
        events: list[TokenEvent] = []
        for resp in responses:
            event = self._event(resp, now)
            if event is not None:
                events.append(event)
        return events

    def _event(self, resp: Any, now: float) -> TokenEvent | None:
        ours = self._to_ours.get(resp.request_id)
        if ours is None:
            return None  # a late answer for a request we no longer track
        if resp.has_error():
            self._forget(resp.request_id)
            return TokenEvent(ours, [], True, FinishReason.ERROR, resp.error_msg, now)
        result = resp.result
        beams = result.output_token_ids
        tokens = [int(t) for t in beams[0]] if beams else []
        if not result.is_final:
            return TokenEvent(ours, tokens, False, None, None, now)
        self._forget(resp.request_id)
        reasons = result.finish_reasons
        name = getattr(reasons[0], "name", str(reasons[0])) if reasons else "LENGTH"
        if name == "TIMED_OUT":
            return TokenEvent(
                ours, tokens, True, FinishReason.ERROR, "TensorRT-LLM timed the request out", now
            )
        return TokenEvent(ours, tokens, True, _FINISH.get(name, FinishReason.LENGTH), None, now)

    def _forget(self, theirs: int) -> None:
        ours = self._to_ours.pop(theirs, None)
        if ours is not None:
            self._to_theirs.pop(ours, None)

    def cancel(self, request_id: int) -> None:
        theirs = self._to_theirs.get(request_id)
        if theirs is not None and not self._shut:
            self._ex.cancel_request(theirs)  # answered by a final CANCELLED response

    def drain_stats(self) -> list[IterationStats]:
        if self._shut:
            return []
        now = self.now()
        out = [
            stats_from_executor(s, self._stats_clock, now)
            for s in self._ex.get_latest_iteration_stats()
        ]
        for s in out:
            # the pool as TensorRT-LLM reports it (unknown before its first iteration)
            if s.kv_capacity is not None:
                self.kv_capacity = s.kv_capacity
        return out

    def shutdown(self) -> None:
        if not self._shut:
            self._shut = True
            self._ex.shutdown()


def from_parameters(
    params: Mapping[str, str], *, max_batch_size: int, realtime: bool = True
) -> TrtllmExecutorEngine:
    """Build the engine from config.pbtxt parameters (strings)."""
    if not realtime:
        raise ConfigError(
            "engine",
            "trtllm_executor",
            "TensorRT-LLM runs in real time only; use engine=simulated for "
            "virtual-clock benchmarks",
        )
    p = parse_params(TRTLLM_EXECUTOR_PARAMS, params)
    path = check_model_path("trtllm_executor", p)
    tle = import_tensorrt_llm("trtllm_executor", "tensorrt_llm.bindings.executor")
    config = build_executor_config(tle, p, max_batch_size)
    log.info(
        "starting TensorRT-LLM executor on %s (max_batch_size=%d, policy=%s)",
        path,
        max_batch_size,
        p["batch_scheduler_policy"],
    )
    try:
        executor = tle.Executor(path, tle.ModelType.DECODER_ONLY, config)
    except (RuntimeError, TypeError) as exc:
        raise EngineError(f"TensorRT-LLM could not load {path}: {exc}") from exc
    return TrtllmExecutorEngine(
        executor,
        tle,
        max_batch_size=max_batch_size,
        kv_capacity=initial_capacity(p),
        stream_tokens=p["trtllm_stream_tokens"],
        max_beam_width=p["max_beam_width"],
        max_num_tokens=p["max_num_tokens"] or None,
    )

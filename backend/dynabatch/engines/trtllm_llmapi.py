"""TensorRT-LLM LLM API (`tensorrt_llm.LLM`, PyTorch backend; the path that survives in
TensorRT-LLM 1.3+) behind the Engine protocol.

The LLM API is asyncio/future based, the Engine protocol is synchronous. The bridge:

- one background thread runs an asyncio event loop. `submit` builds the
  SamplingParams in the caller's thread (so a bad request fails right there) and
  schedules a coroutine on that loop which calls `llm.generate_async(...)` and
  iterates the RequestOutput with `async for`, turning each step into a TokenEvent
  on a thread-safe queue;
- `poll_events(timeout)` reads that queue (blocking up to `timeout` for the first);
- `cancel` asks the loop to `abort()` the request; TensorRT-LLM then finishes it
  with finish_reason 'cancelled', which becomes the final CANCELLED event;
- a second thread calls the blocking `llm.get_stats(timeout)` and queues the
  normalised IterationStats for `drain_stats`. get_stats returns once no record
  arrived for `timeout` seconds, so that timeout (`stats_check_period_ms`) bounds
  how late the controller sees an iteration.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import threading
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
    stats_from_dict,
)
from .trtllm_parallel import PARALLEL_PARAMS, llmapi_parallel_kwargs, llmapi_visible_devices

log = logging.getLogger("dynabatch.engines.trtllm_llmapi")

TRTLLM_LLMAPI_PARAMS: list[ParamSpec] = COMMON_PARAMS + [
    ParamSpec(
        "tokenizer_dir",
        str,
        "",
        "tokenizer location (empty = the model's own)",
        group="tensorrt_llm",
    ),
    ParamSpec(
        "skip_tokenizer_init",
        bool,
        False,
        "load no tokenizer; requests without end_id then stop at their length only",
        group="tensorrt_llm",
    ),
    ParamSpec(
        "stats_check_period_ms",
        int,
        20,
        "get_stats timeout: the longest quiet gap before stats are handed over",
        min=1,
        max=10_000,
        group="tensorrt_llm",
    ),
    *PARALLEL_PARAMS,  # multi-GPU: trtllm_parallel.py
]

_FINISH = {
    "stop": FinishReason.END_ID,
    "length": FinishReason.LENGTH,
    "cancelled": FinishReason.CANCELLED,
}


def build_llm_kwargs(llmapi: Any, p: Mapping[str, Any], max_batch_size: int) -> dict[str, Any]:
    """LLM(...) keyword arguments for parsed parameters `p` (module `llmapi`)."""
    policy = {
        "max_utilization": llmapi.CapacitySchedulerPolicy.MAX_UTILIZATION,
        "guaranteed_no_evict": llmapi.CapacitySchedulerPolicy.GUARANTEED_NO_EVICT,
    }
    kw: dict[str, Any] = dict(
        model=p["gpt_model_path"],
        max_batch_size=max_batch_size,
        max_beam_width=p["max_beam_width"],
        kv_cache_config=llmapi.KvCacheConfig(
            enable_block_reuse=p["enable_kv_cache_reuse"],
            max_tokens=p["max_tokens_in_paged_kv_cache"] or None,
            free_gpu_memory_fraction=p["kv_cache_free_gpu_mem_fraction"],
        ),
        scheduler_config=llmapi.SchedulerConfig(
            capacity_scheduler_policy=policy[p["batch_scheduler_policy"]]
        ),
        enable_chunked_prefill=p["enable_chunked_context"],
        enable_iter_perf_stats=True,
        iter_stats_max_iterations=p["iter_stats_max_iterations"],
        **llmapi_parallel_kwargs(p),
        skip_tokenizer_init=p["skip_tokenizer_init"],
    )
    if p["max_num_tokens"]:
        kw["max_num_tokens"] = p["max_num_tokens"]
    if p["tokenizer_dir"]:
        kw["tokenizer"] = p["tokenizer_dir"]
    return kw


class TrtllmLlmApiEngine:
    """Engine over a `tensorrt_llm.LLM`."""

    def __init__(
        self,
        llm: Any,
        sampling_cls: Any,
        *,
        max_batch_size: int,
        kv_capacity: KvCapacity | None,
        stream_tokens: bool = True,
        stats_period_s: float = 0.02,
        clock: Callable[[], float] | None = None,
        max_num_tokens: int | None = None,
    ) -> None:
        self._llm = llm
        self._sampling_cls = sampling_cls
        self.max_batch_size = max_batch_size
        # the most tokens of one iteration when config.pbtxt sets it (None: the engine
        # build's own, which the executor does not tell): the serving core passes no
        # more prompt tokens per iteration than that (core._prefill_allowance)
        self.max_num_tokens = max_num_tokens
        self.kv_capacity = kv_capacity
        self._stream_tokens = stream_tokens
        self._stats_period = stats_period_s
        # engine time: seconds since start; a benchmark on the stand-in passes its virtual clock
        self._now = clock or EngineClock().now
        self._stats_clock = StatsClock()
        self._events: queue.Queue[TokenEvent] = queue.Queue()
        self._stats: queue.Queue[IterationStats] = queue.Queue()
        self._outputs: dict[int, Any] = {}  # our id -> RequestOutput (loop thread only)
        self._tasks: dict[int, concurrent.futures.Future] = {}
        self._cancel_early: set[int] = set()  # cancelled before generate_async returned
        self._shut = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="dynabatch-llmapi-loop", daemon=True
        )
        self._loop_thread.start()
        self._stats_thread = threading.Thread(
            target=self._stats_loop, name="dynabatch-llmapi-stats", daemon=True
        )
        self._stats_thread.start()

    def now(self) -> float:
        return self._now()

    # ---- requests ---------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> None:
        if self._shut.is_set():
            raise EngineError("the TensorRT-LLM LLM is shut down")
        sp = request.sampling
        tok = getattr(self._llm, "tokenizer", None)
        # Without end_id and without a tokenizer, -1 means "no end token" (trtllm-bench does
        # the same): the request then stops at its length.
        end_id = request.end_id if request.end_id is not None else (None if tok else -1)
        beam = sp.beam_width
        try:
            params = self._sampling_cls(
                end_id=end_id,
                pad_id=request.pad_id,
                max_tokens=int(request.max_new_tokens),
                n=1,
                best_of=beam if beam > 1 else None,
                use_beam_search=beam > 1,
                detokenize=False,
                **sampling_fields(sp),
            )
        except (TypeError, ValueError) as exc:
            raise EngineError(f"invalid sampling options: {exc}") from exc
        streaming = beam == 1 and (request.streaming or self._stream_tokens)
        prompt = [int(t) for t in request.prompt_ids]
        fut = asyncio.run_coroutine_threadsafe(
            self._run(request.request_id, prompt, params, streaming), self._loop
        )
        self._tasks[request.request_id] = fut
        fut.add_done_callback(self._task_done)

    def _task_done(self, fut: Any) -> None:
        for rid, f in list(self._tasks.items()):
            if f is fut:
                self._tasks.pop(rid, None)

    async def _run(self, rid: int, prompt: list[int], params: Any, streaming: bool) -> None:
        try:
            out = self._llm.generate_async(prompt, sampling_params=params, streaming=streaming)
        except Exception as exc:  # refused at submission (validation, shut down, ...)
            self._put(
                TokenEvent(
                    rid,
                    [],
                    True,
                    FinishReason.ERROR,
                    f"TensorRT-LLM refused the request: {exc}",
                    self.now(),
                )
            )
            return
        self._outputs[rid] = out
        if rid in self._cancel_early:
            out.abort()
        try:
            async for step in out:
                seq = step.outputs[0]
                tokens = [int(t) for t in seq.token_ids_diff]
                if not step.finished:
                    if tokens:
                        self._put(TokenEvent(rid, tokens, False, None, None, self.now()))
                    continue
                reason = _FINISH.get(seq.finish_reason or "", None)
                if reason is None:
                    reason = FinishReason.CANCELLED if out.aborted() else FinishReason.LENGTH
                self._put(TokenEvent(rid, tokens, True, reason, None, self.now()))
                return
            # The iterator ended without a final step (should not happen): close it.
            self._put(
                TokenEvent(
                    rid,
                    [],
                    True,
                    FinishReason.CANCELLED if out.aborted() else FinishReason.ERROR,
                    None
                    if out.aborted()
                    else "TensorRT-LLM ended the request without a final result",
                    self.now(),
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # RequestError: a per-request failure
            self._put(TokenEvent(rid, [], True, FinishReason.ERROR, str(exc), self.now()))
        finally:
            self._outputs.pop(rid, None)
            self._cancel_early.discard(rid)

    def _put(self, event: TokenEvent) -> None:
        self._events.put(event)

    def poll_events(self, timeout: float = 0.0) -> list[TokenEvent]:
        out: list[TokenEvent] = []
        try:
            out.append(
                self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
            )
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            pass
        return out

    def cancel(self, request_id: int) -> None:
        if not self._shut.is_set():
            self._loop.call_soon_threadsafe(self._abort, request_id)

    def _abort(self, rid: int) -> None:  # on the loop thread
        out = self._outputs.get(rid)
        if out is not None:
            out.abort()
        elif rid in self._tasks:
            self._cancel_early.add(rid)

    # ---- stats ------------------------------------------------------------------
    def _stats_loop(self) -> None:
        while not self._shut.is_set():
            try:
                records = self._llm.get_stats(timeout=self._stats_period)
            except Exception as exc:
                log.warning("get_stats failed: %s", exc)
                records = []
            now = self.now()
            for rec in records:
                if isinstance(rec, str):  # older releases returned JSON strings
                    rec = json.loads(rec)
                self._stats.put(stats_from_dict(rec, self._stats_clock, now))
            if not records:
                self._shut.wait(self._stats_period)

    def drain_stats(self) -> list[IterationStats]:
        out: list[IterationStats] = []
        try:
            while True:
                out.append(self._stats.get_nowait())
        except queue.Empty:
            pass
        for s in out:
            # the pool as TensorRT-LLM reports it (unknown before its first iteration)
            if s.kv_capacity is not None:
                self.kv_capacity = s.kv_capacity
        return out

    def shutdown(self) -> None:
        if self._shut.is_set():
            return
        self._shut.set()
        self._stats_thread.join(timeout=5 + self._stats_period)
        for fut in list(self._tasks.values()):
            fut.cancel()
        try:
            self._llm.shutdown()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=5)


def from_parameters(
    params: Mapping[str, str], *, max_batch_size: int, realtime: bool = True
) -> TrtllmLlmApiEngine:
    """Build the engine from config.pbtxt parameters (strings)."""
    if not realtime:
        raise ConfigError(
            "engine",
            "trtllm_llmapi",
            "TensorRT-LLM runs in real time only; use engine=simulated for "
            "virtual-clock benchmarks",
        )
    p = parse_params(TRTLLM_LLMAPI_PARAMS, params)
    path = check_model_path("trtllm_llmapi", p)
    trtllm = import_tensorrt_llm("trtllm_llmapi")
    llmapi = import_tensorrt_llm("trtllm_llmapi", "tensorrt_llm.llmapi")
    kwargs = build_llm_kwargs(llmapi, p, max_batch_size)
    llmapi_visible_devices(p)  # the LLM API takes no device list
    log.info(
        "starting TensorRT-LLM LLM on %s (max_batch_size=%d, policy=%s)",
        path,
        max_batch_size,
        p["batch_scheduler_policy"],
    )
    try:
        llm = trtllm.LLM(**kwargs)
    except Exception as exc:  # pydantic ValidationError, OSError (tokenizer), RuntimeError
        raise EngineError(f"TensorRT-LLM could not load {path}: {exc}") from exc
    return TrtllmLlmApiEngine(
        llm,
        trtllm.SamplingParams,
        max_batch_size=max_batch_size,
        kv_capacity=initial_capacity(p),
        stream_tokens=p["trtllm_stream_tokens"],
        stats_period_s=p["stats_check_period_ms"] / 1000.0,
        max_num_tokens=p["max_num_tokens"] or None,
    )

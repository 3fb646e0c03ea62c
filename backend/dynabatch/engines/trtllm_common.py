"""Helpers shared by the TensorRT-LLM adapters: the lazy import, the parameters both
declare, sampling options, and stats normalisation into `types.IterationStats`.

Nothing here imports tensorrt_llm at module load: the package must import without it.
"""

from __future__ import annotations

import datetime
import importlib
import time
from collections.abc import Mapping
from typing import Any

from ..params import ConfigError, ParamSpec
from ..types import IterationStats, KvCapacity, SamplingParams

# The image the Dockerfile builds from; docs/GPU.md names the same tag (a test checks).
# It ships TensorRT-LLM 1.2.1 (Executor API and LLM API both present).
TRITON_TRTLLM_IMAGE = "nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3"

INSTALL_HINT = (
    "TensorRT-LLM is not importable in this Python ({error}). The '{engine}' engine needs "
    "TensorRT-LLM 1.2.x and an NVIDIA GPU: run the server in the container built by this "
    f"repository's Dockerfile (FROM {TRITON_TRTLLM_IMAGE}), or `pip install "
    "tensorrt_llm==1.2.*` from https://pypi.nvidia.com on a CUDA machine. Without a GPU use "
    "engine=simulated (see docs/GPU.md)."
)


def import_tensorrt_llm(engine: str, module: str = "tensorrt_llm") -> Any:
    """Import a TensorRT-LLM module or fail model load with a message saying what to do."""
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as exc:  # OSError: a CUDA/TensorRT shared library missing
        raise ConfigError("engine", engine, INSTALL_HINT.format(error=exc, engine=engine)) from exc


def _spec(name: str, kind: type, default: Any, help: str, **kw: Any) -> ParamSpec:
    return ParamSpec(name, kind, default, help, group="tensorrt_llm", **kw)


# Parameters both adapters read. Names are TensorRT-LLM's Triton model names; the ones
# shared with the simulated engine keep its exact names.
COMMON_PARAMS: list[ParamSpec] = [
    _spec(
        "gpt_model_path",
        str,
        "",
        "TensorRT-LLM engine directory (Executor) or checkpoint / HF model (LLM API); required",
    ),
    _spec(
        "batch_scheduler_policy",
        str,
        "guaranteed_no_evict",
        "capacity scheduler: reserve a request's whole KV up front, or allocate per token "
        "and pause requests when blocks run out",
        choices=("guaranteed_no_evict", "max_utilization"),
    ),
    _spec(
        "kv_cache_free_gpu_mem_fraction",
        float,
        0.9,
        "fraction of free GPU memory given to the paged KV cache",
        min=0.0,
        max=1.0,
    ),
    _spec(
        "max_tokens_in_paged_kv_cache",
        int,
        0,
        "cap on KV cache tokens (0 = no cap: the memory fraction decides)",
        min=0,
    ),
    _spec("enable_kv_cache_reuse", bool, False, "reuse KV blocks of shared prompt prefixes"),
    _spec("enable_chunked_context", bool, False, "split long prompts over several iterations"),
    _spec("max_beam_width", int, 1, "largest beam width a request may ask for", min=1),
    _spec(
        "max_num_tokens",
        int,
        0,
        "tokens per iteration budget (0 = the engine's build value)",
        min=0,
    ),
    _spec(
        "iter_stats_max_iterations",
        int,
        1000,
        "iteration stats kept by TensorRT-LLM between two reads",
        min=1,
    ),
    _spec(
        "trtllm_stream_tokens",
        bool,
        True,
        "ask TensorRT-LLM for per-iteration tokens even for non-streaming requests, so the "
        "controller sees first tokens and progress (the response is still sent once)",
    ),
]


def check_model_path(engine: str, parsed: Mapping[str, Any]) -> str:
    path = parsed["gpt_model_path"]
    if not path:
        raise ConfigError(
            "gpt_model_path",
            path,
            f"required with engine={engine}: the engine directory / checkpoint",
        )
    return path


def sampling_fields(sp: SamplingParams) -> dict[str, Any]:
    """Options common to Executor SamplingConfig and LLM-API SamplingParams.

    dynabatch uses 0 for "unset" (top_k, top_p, min_tokens), TensorRT-LLM uses None.
    """
    out: dict[str, Any] = {
        "temperature": float(sp.temperature),
        "top_k": sp.top_k if sp.top_k > 0 else None,
        "top_p": float(sp.top_p) if sp.top_p > 0 else None,
        "seed": sp.seed,
        "min_tokens": sp.min_tokens if sp.min_tokens > 0 else None,
        "repetition_penalty": float(sp.repetition_penalty)
        if sp.repetition_penalty != 1.0
        else None,
        "presence_penalty": float(sp.presence_penalty) if sp.presence_penalty else None,
        "frequency_penalty": float(sp.frequency_penalty) if sp.frequency_penalty else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def parse_timestamp(text: Any) -> float | None:
    """TensorRT-LLM's IterationStats.timestamp ("%m-%d-%Y %H:%M:%S.%f") -> epoch seconds."""
    if not isinstance(text, str) or not text:
        return None
    for fmt in ("%m-%d-%Y %H:%M:%S.%f", "%m-%d-%Y %H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    return None


class StatsClock:
    """Maps TensorRT-LLM's wall-clock stats timestamps onto the engine clock.

    The offset is fixed on the first stamp that parses (time zone and delivery delay fold
    into it), so differences between iterations keep TensorRT-LLM's precision even when
    several records arrive in one read. Results never go backwards or past `now`.
    """

    def __init__(self) -> None:
        self._offset: float | None = None
        self._last = 0.0

    def to_engine(self, stamp: Any, now: float) -> float:
        wall = parse_timestamp(stamp)
        if wall is None:
            t = now
        else:
            if self._offset is None:
                self._offset = now - wall
            t = min(wall + self._offset, now)
        self._last = max(self._last, t)
        return self._last


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and value == value else 0.0


def stats_from_fields(f: Mapping[str, Any], timestamp: float) -> IterationStats:
    """TensorRT-LLM's iteration fields (snake_case names) -> IterationStats, keeping
    TensorRT-LLM's meaning for each (sources: NVIDIA/TensorRT-LLM, 1.2.x):

    - kv_cache_stats max/free/used_num_blocks, tokens_per_block: the paged pool
      (cpp/tensorrt_llm/batch_manager/kvCacheManager.cpp getKvCacheStats; PyTorch
      tensorrt_llm/_torch/pyexecutor/py_executor.py `_get_init_iter_stats`). The pool
      is sized when the executor starts, so every record carries it.
    - num_paused_requests: requests the capacity scheduler paused *in this iteration*
      (cpp/tensorrt_llm/batch_manager/trtGptModelInflightBatching.cpp
      getCurrentIterationStats: `mLastIterationStatsIFB.pausedRequests.size()`;
      py_executor.py `_update_iter_stats`: `len(scheduled_batch.paused_requests)`).
      That is exactly dynabatch's `num_new_pauses`, so both carry it.
    - num_ctx_tokens: prefill tokens of the iteration; several PyTorch-backend releases
      never set it (it stays 0), so controllers must not depend on it.
    - num_gen_requests: one token each per iteration (no speculative decoding).
    """
    gen = int(_num(f.get("num_gen_requests")))
    paused = int(_num(f.get("num_paused_requests")))
    return IterationStats(
        iter=int(_num(f.get("iter"))),
        timestamp=timestamp,
        iter_latency_ms=_num(f.get("iter_latency_ms")),
        num_active_requests=int(_num(f.get("num_active_requests"))),
        num_queued_requests=int(_num(f.get("num_queued_requests"))),
        num_completed_requests=int(_num(f.get("num_completed_requests"))),
        max_num_active_requests=int(_num(f.get("max_num_active_requests"))),
        max_num_blocks=int(_num(f.get("max_num_blocks"))),
        free_num_blocks=int(_num(f.get("free_num_blocks"))),
        used_num_blocks=int(_num(f.get("used_num_blocks"))),
        tokens_per_block=int(_num(f.get("tokens_per_block"))),
        num_scheduled_requests=int(_num(f.get("num_scheduled_requests"))),
        num_context_requests=int(_num(f.get("num_context_requests"))),
        num_gen_requests=gen,
        num_paused_requests=paused,
        num_ctx_tokens=int(_num(f.get("num_ctx_tokens"))),
        num_gen_tokens=gen,
        num_new_pauses=paused,
    )


def stats_from_executor(s: Any, clock: StatsClock, now: float) -> IterationStats:
    """A `tensorrt_llm.bindings.executor.IterationStats` object -> IterationStats."""
    kv = getattr(s, "kv_cache_stats", None)
    ib = getattr(s, "inflight_batching_stats", None)
    f = {
        name: getattr(s, name, 0)
        for name in (
            "iter",
            "iter_latency_ms",
            "num_active_requests",
            "num_queued_requests",
            "num_completed_requests",
            "max_num_active_requests",
        )
    }
    for name in ("max_num_blocks", "free_num_blocks", "used_num_blocks", "tokens_per_block"):
        f[name] = getattr(kv, name, 0) if kv is not None else 0
    for name in (
        "num_scheduled_requests",
        "num_context_requests",
        "num_gen_requests",
        "num_paused_requests",
        "num_ctx_tokens",
    ):
        f[name] = getattr(ib, name, 0) if ib is not None else 0
    return stats_from_fields(f, clock.to_engine(getattr(s, "timestamp", None), now))


_CAMEL = {
    "iter": "iter",
    "iterLatencyMS": "iter_latency_ms",
    "numActiveRequests": "num_active_requests",
    "numQueuedRequests": "num_queued_requests",
    "numCompletedRequests": "num_completed_requests",
    "maxNumActiveRequests": "max_num_active_requests",
}
_CAMEL_KV = {
    "maxNumBlocks": "max_num_blocks",
    "freeNumBlocks": "free_num_blocks",
    "usedNumBlocks": "used_num_blocks",
    "tokensPerBlock": "tokens_per_block",
}
_CAMEL_IB = {
    "numScheduledRequests": "num_scheduled_requests",
    "numContextRequests": "num_context_requests",
    "numGenRequests": "num_gen_requests",
    "numPausedRequests": "num_paused_requests",
    "numCtxTokens": "num_ctx_tokens",
}


def stats_from_dict(d: Mapping[str, Any], clock: StatsClock, now: float) -> IterationStats:
    """One `LLM.get_stats()` record (camelCase, from IterationStats::toJsonStr)."""
    f = {ours: d.get(theirs) for theirs, ours in _CAMEL.items()}
    kv = d.get("kvCacheStats") or {}
    ib = d.get("inflightBatchingStats") or {}
    f.update({ours: kv.get(theirs) for theirs, ours in _CAMEL_KV.items()})
    f.update({ours: ib.get(theirs) for theirs, ours in _CAMEL_IB.items()})
    return stats_from_fields(f, clock.to_engine(d.get("timestamp"), now))


def initial_capacity(parsed: Mapping[str, Any]) -> KvCapacity | None:
    """KV capacity before the first stats arrive (replaced by every stats record).

    With a token cap the pool holds at most that many tokens (TensorRT-LLM takes the
    smaller of the cap and what the memory fraction gives), which is enough to refuse a
    request that can never fit. Without a cap the size depends on free GPU memory, which
    only TensorRT-LLM knows: the capacity is unknown (None) until its first iteration.
    """
    cap = parsed.get("max_tokens_in_paged_kv_cache") or 0
    return KvCapacity(total_blocks=cap, tokens_per_block=1) if cap else None


class EngineClock:
    """Engine time: seconds since the adapter started (monotonic)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

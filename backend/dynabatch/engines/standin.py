"""The TensorRT-LLM adapters on the stand-in `tensorrt_llm`, on a virtual clock.

Without TensorRT-LLM (no GPU) the repository's stand-in (`tests/stand_in`: TensorRT-LLM's
names and behaviour, driven by the simulated executor) lets a benchmark run the very
adapter code a GPU deployment runs: `dynabatch bench --engine trtllm_executor --standin`.
The stand-in runs without its own thread (`virtual_clock`); `VirtualStandinEngine`
steps it and, because the LLM API adapter hands responses and stats over on its own
threads, waits (bounded) until everything of an iteration has come through before the
benchmark reads it, so both adapters see what the simulated engine sees, in the same
order. Nothing here is used when serving.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..params import ConfigError, parse_params
from ..types import GenerationRequest, IterationStats, KvCapacity, TokenEvent
from .base import Engine

# tests/stand_in of a source checkout (the stand-in is not part of an installed package)
STAND_IN_DIR = Path(__file__).resolve().parents[3] / "tests" / "stand_in"
_SETTLE_S = 10.0  # longest wait for the adapter's threads to pass an iteration on


def activate_standin() -> None:
    """Make the stand-in importable as `tensorrt_llm`, unless TensorRT-LLM is installed."""
    try:
        import tensorrt_llm  # noqa: F401

        return
    except ImportError:
        pass
    if not (STAND_IN_DIR / "tensorrt_llm").is_dir():
        raise ConfigError(
            "standin",
            str(STAND_IN_DIR),
            "the TensorRT-LLM stand-in lives in the source checkout's tests/stand_in",
        )
    sys.path.insert(0, str(STAND_IN_DIR))


class VirtualStandinEngine:
    """An adapter (Engine) plus the stand-in loop it talks to, stepped by the caller."""

    def __init__(self, adapter: Engine, loop: Any, model_dir: str) -> None:
        self.adapter = adapter
        self.loop = loop  # the stand-in's SimEngine (virtual clock)
        self.max_batch_size = adapter.max_batch_size
        self.max_num_tokens = getattr(adapter, "max_num_tokens", None)
        self._model_dir = model_dir
        self._submitted = 0
        self._events_seen = 0
        self._records_seen = 0

    @property
    def kv_capacity(self) -> KvCapacity | None:
        return self.adapter.kv_capacity  # unknown until the first iteration, as on a GPU

    @property
    def clairvoyant_kv_capacity(self) -> KvCapacity:
        """The pool the stand-in will report: only for the benchmark's oracle, which
        knows every request's future anyway."""
        return self.loop.exe.kv_capacity

    # ---- Engine protocol ------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> None:
        # a trace's hidden length goes with the request (TensorRT-LLM has no such field)
        self.loop.hidden_lengths.append(request.true_output_len)
        self._submitted += 1
        self.adapter.submit(request)
        self._settle(lambda: self.loop.enqueued >= self._submitted, "a submitted request")

    def poll_events(self, timeout: float = 0.0) -> list[TokenEvent]:
        events = self.adapter.poll_events(0.0)
        deadline = time.monotonic() + _SETTLE_S
        # each stand-in response becomes one event; wait for the adapter's threads
        while self._events_seen + len(events) < self.loop.responses:
            if time.monotonic() > deadline:
                raise TimeoutError("the adapter did not pass a response on")
            events += self.adapter.poll_events(0.001)
        self._events_seen += len(events)
        return events

    def drain_stats(self) -> list[IterationStats]:
        stats = self.adapter.drain_stats()
        deadline = time.monotonic() + _SETTLE_S
        while self._records_seen + len(stats) < self.loop.records:
            if time.monotonic() > deadline:
                raise TimeoutError("the adapter did not pass an iteration's stats on")
            time.sleep(0.0002)  # the LLM API adapter's stats thread runs on its own
            stats += self.adapter.drain_stats()
        self._records_seen += len(stats)
        return stats

    def cancel(self, request_id: int) -> None:
        self.adapter.cancel(request_id)

    def now(self) -> float:
        return self.loop.now()

    def shutdown(self) -> None:
        self.adapter.shutdown()
        try:
            for name in os.listdir(self._model_dir):
                os.unlink(os.path.join(self._model_dir, name))
            os.rmdir(self._model_dir)
        except OSError:
            pass

    # ---- virtual clock ----------------------------------------------------------------
    @property
    def has_work(self) -> bool:
        return self.loop.has_work

    def step(self) -> bool:
        return self.loop.step()

    def advance_to(self, t: float) -> None:
        self.loop.advance_to(t)

    def _settle(self, done, what: str) -> None:
        deadline = time.monotonic() + _SETTLE_S
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the adapter did not pass {what} on")
            time.sleep(0.0001)


def _model_dir(engine: str, profile: str, max_batch_size: int, kw: Mapping[str, Any]) -> str:
    """A model directory for the stand-in with the simulated engine's build values."""
    d = tempfile.mkdtemp(prefix="dynabatch-standin-")
    tpb = int(kw.get("tokens_per_block", 64))
    knobs = {"profile": profile, "virtual_clock": True, "tokens_per_block": tpb}
    big = 1 << 30
    if engine == "trtllm_executor":
        cfg: dict[str, Any] = {
            "build_config": {
                "max_batch_size": max_batch_size,
                "max_input_len": big,
                "max_seq_len": big,
                "max_num_tokens": int(kw.get("max_num_tokens", 8192)),
                "plugin_config": {"tokens_per_block": tpb},
            },
            "stand_in": knobs,
        }
    else:
        cfg = {"eos_token_id": 2, "max_position_embeddings": big, "stand_in": knobs}
        Path(d, "tokenizer_config.json").write_text("{}")
    Path(d, "config.json").write_text(json.dumps(cfg))
    return d


def make_standin_engine(
    engine: str,
    profile: str,
    *,
    capacity_policy: str,
    max_batch_size: int,
    **kw: Any,
) -> VirtualStandinEngine:
    """The `engine` adapter over the stand-in on a virtual clock, configured like
    `SimulatedExecutor(profile, ...)` with the same keywords (chunked context on, the
    profile's KV pool, 64-token blocks, 8192 tokens per iteration unless given)."""
    activate_standin()
    model = _model_dir(engine, profile, max_batch_size, kw)
    params = {
        "gpt_model_path": model,
        "batch_scheduler_policy": capacity_policy,
        "enable_chunked_context": str(kw.get("enable_chunked_context", True)).lower(),
        "kv_cache_free_gpu_mem_fraction": str(kw.get("kv_cache_free_gpu_mem_fraction", 0.9)),
        "max_tokens_in_paged_kv_cache": str(kw.get("max_tokens_in_paged_kv_cache") or 0),
        "max_num_tokens": str(kw.get("max_num_tokens", 8192)),
        "stats_check_period_ms": "1",  # LLM API only: how often its stats thread looks
    }
    if engine == "trtllm_executor":
        from . import trtllm_executor as tx

        p = parse_params(tx.TRTLLM_EXECUTOR_PARAMS, params)
        tle = tx.import_tensorrt_llm(engine, "tensorrt_llm.bindings.executor")
        ex = tle.Executor(
            model, tle.ModelType.DECODER_ONLY, tx.build_executor_config(tle, p, max_batch_size)
        )
        loop = ex.stand_in_engine
        adapter: Engine = tx.TrtllmExecutorEngine(
            ex,
            tle,
            max_batch_size=max_batch_size,
            kv_capacity=tx.initial_capacity(p),
            clock=loop.now,
            max_num_tokens=p["max_num_tokens"] or None,
        )
    elif engine == "trtllm_llmapi":
        from . import trtllm_llmapi as tl

        p = parse_params(tl.TRTLLM_LLMAPI_PARAMS, params)
        trtllm = tl.import_tensorrt_llm(engine)
        llmapi = tl.import_tensorrt_llm(engine, "tensorrt_llm.llmapi")
        llm = trtllm.LLM(**tl.build_llm_kwargs(llmapi, p, max_batch_size))
        loop = llm._sim
        adapter = tl.TrtllmLlmApiEngine(
            llm,
            trtllm.SamplingParams,
            max_batch_size=max_batch_size,
            kv_capacity=tl.initial_capacity(p),
            stats_period_s=p["stats_check_period_ms"] / 1000.0,
            clock=loop.now,
            max_num_tokens=p["max_num_tokens"] or None,
        )
    else:
        raise ConfigError("engine", engine, "trtllm_executor or trtllm_llmapi")
    return VirtualStandinEngine(adapter, loop, model)

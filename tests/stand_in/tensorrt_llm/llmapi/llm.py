"""Stand-in for `tensorrt_llm.LLM` (PyTorch backend) and `RequestOutput`, for tests only.

Checked against tensorrt_llm/llmapi/llm.py and tensorrt_llm/executor/result.py
(NVIDIA/TensorRT-LLM): LLM(model, tokenizer=None, tokenizer_mode='auto',
skip_tokenizer_init=False, trust_remote_code=False, tensor_parallel_size=1, dtype='auto',
revision=None, tokenizer_revision=None, **kwargs -> LlmArgs, unknown keys rejected);
generate_async(inputs, sampling_params=None, ..., streaming=False) -> RequestOutput;
a sampling_params without end_id needs a tokenizer (ValueError otherwise);
get_stats(timeout=2) -> List[dict] with camelCase keys (IterationStats::toJsonStr),
collected until no new record arrives within `timeout`, then empty until the next
generate_async (IterationResult.get_results / mark_undone); shutdown().
RequestOutput: request_id, prompt_token_ids, outputs[CompletionOutput(index, token_ids,
token_ids_diff, finish_reason 'stop'|'length'|'timeout'|'cancelled', stop_reason)],
finished, abort(), aborted(), result(timeout), sync and async iteration (one step per
response); a failed request raises RequestError from iteration/result().
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional

from .._sim import SimEngine, SimResponse, stand_in_pool, stand_in_settings
from ..executor import RequestError
from ..sampling_params import SamplingParams
from .llm_args import KvCacheConfig, SchedulerConfig, ValidationError, as_model

_LLM_ARGS = dict(
    backend="pytorch",
    max_batch_size=2048,
    max_num_tokens=8192,
    max_seq_len=None,
    max_input_len=None,
    max_beam_width=1,
    kv_cache_config=None,
    scheduler_config=None,
    enable_chunked_prefill=False,
    enable_iter_perf_stats=False,
    enable_iter_req_stats=False,
    iter_stats_max_iterations=None,
    request_stats_max_iterations=None,
    pipeline_parallel_size=1,
    print_iter_log=False,
    cuda_graph_config=None,
    enable_attention_dp=False,
    stream_interval=1,
)


@dataclass
class CompletionOutput:
    index: int
    text: str = ""
    token_ids: List[int] = field(default_factory=list)
    finish_reason: Optional[str] = None
    stop_reason: Optional[Any] = None
    _last_token_ids_len: int = 0

    @property
    def length(self) -> int:
        return len(self.token_ids)

    @property
    def token_ids_diff(self) -> List[int]:
        return self.token_ids[self._last_token_ids_len :]


class RequestOutput:
    def __init__(
        self,
        llm: "LLM",
        request_id: int,
        prompt_token_ids: list,
        sampling_params: SamplingParams,
        streaming: bool,
    ) -> None:
        self.request_id = request_id
        self.prompt_token_ids = prompt_token_ids
        self.sampling_params = sampling_params
        self._streaming = streaming
        self._llm = llm
        self._done = False
        self._aborted = False
        self.outputs = [CompletionOutput(0)]
        try:
            self._loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
            self._aq: Optional[asyncio.Queue] = asyncio.Queue()
        except RuntimeError:
            self._loop, self._aq = None, None
        self._q: "queue.Queue[SimResponse]" = queue.Queue()

    @property
    def finished(self) -> bool:
        return self._done

    def abort(self) -> None:
        self._llm._sim.cancel(self.request_id)
        self._aborted = True

    def aborted(self) -> bool:
        return self._aborted

    def _deliver(self, resp: SimResponse) -> None:  # from the executor thread
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._aq.put_nowait, resp)
            except RuntimeError:  # loop closed
                pass
        else:
            self._q.put(resp)

    def _handle(self, resp: SimResponse) -> None:
        self._done = resp.is_final
        if resp.error is not None:
            raise RequestError(resp.error)
        out = self.outputs[0]
        out._last_token_ids_len = len(out.token_ids)
        out.token_ids.extend(resp.tokens)
        if resp.finish_reason == "CANCELLED":
            out.finish_reason = "cancelled"
        elif self._done and resp.finish_reason == "END_ID":
            out.finish_reason, out.stop_reason = "stop", self.sampling_params.end_id
        elif self._done and resp.finish_reason == "LENGTH":
            out.finish_reason = "length"

    def result(self, timeout: Optional[float] = None) -> "RequestOutput":
        while not self._done:
            self._handle(self._q.get(timeout=timeout))
        return self

    def __iter__(self) -> "RequestOutput":
        return self

    def __next__(self) -> "RequestOutput":
        if self._done:
            raise StopIteration
        self._handle(self._q.get())
        return self

    def __aiter__(self) -> "RequestOutput":
        return self

    async def __anext__(self) -> "RequestOutput":
        if self._done:
            raise StopAsyncIteration
        assert self._aq is not None, (
            "The asyncio event loop was not present during "
            "initialization, so async operations are not available."
        )
        self._handle(await self._aq.get())
        return self


class LLM:
    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        tokenizer_mode: str = "auto",
        skip_tokenizer_init: bool = False,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        revision: Any = None,
        tokenizer_revision: Any = None,
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - set(_LLM_ARGS)
        if unknown:
            raise ValidationError(
                "Failed to parse the arguments for the LLM constructor: "
                f"extra inputs are not permitted: {', '.join(sorted(unknown))}"
            )
        args = dict(_LLM_ARGS)
        args.update(kwargs)
        if args["backend"] not in ("pytorch", "_autodeploy", "tensorrt"):
            raise ValidationError(f"backend: invalid value {args['backend']!r}")
        if not isinstance(tensor_parallel_size, int) or tensor_parallel_size < 1:
            raise ValidationError("tensor_parallel_size must be a positive int")
        cfg_path = os.path.join(os.fspath(model), "config.json")
        if not os.path.isfile(cfg_path):
            raise ValueError(f"model should be a local checkpoint directory; {cfg_path} not found")
        with open(cfg_path) as fh:
            hf = json.load(fh)
        tok_dir = os.fspath(tokenizer) if tokenizer else os.fspath(model)
        self.tokenizer = None
        if not skip_tokenizer_init:
            if not os.path.isfile(os.path.join(tok_dir, "tokenizer_config.json")):
                raise OSError(f"Can't load tokenizer for '{tok_dir}'")
            self.tokenizer = type(
                "Tok", (), {"eos_token_id": hf.get("eos_token_id", 2), "pad_token_id": None}
            )()
        kv = as_model(KvCacheConfig, args["kv_cache_config"], "kv_cache_config")
        sched = as_model(SchedulerConfig, args["scheduler_config"], "scheduler_config")
        self.args = dict(
            args,
            model=model,
            tokenizer=tokenizer,
            kv_cache_config=kv,
            scheduler_config=sched,
            skip_tokenizer_init=skip_tokenizer_init,
            tensor_parallel_size=tensor_parallel_size,
        )
        max_seq_len = args["max_seq_len"] or hf.get("max_position_embeddings", 4096)
        knobs = hf.get("stand_in", {})
        # a benchmark sets the simulated engine's block size (stand-in knob)
        tpb = int(knobs.get("tokens_per_block", kv.tokens_per_block))
        pool = stand_in_pool(knobs, tpb, kv.free_gpu_memory_fraction, kv.max_tokens)
        self._results: dict[int, RequestOutput] = {}
        self._ids = itertools.count(1)
        self._stats_done = False
        self._shut = False
        self._sim = SimEngine(
            total_blocks=pool // tpb,
            tokens_per_block=tpb,
            max_batch_size=args["max_batch_size"],
            max_num_tokens=args["max_num_tokens"],
            policy=sched.capacity_scheduler_policy.value,
            max_input_len=max_seq_len,
            max_seq_len=max_seq_len,
            chunked=args["enable_chunked_prefill"],
            stats_max=args["iter_stats_max_iterations"] or 1000,
            emit=self._dispatch,
            report_ctx_tokens=False,  # the PyTorch backend leaves numCtxTokens at 0
            **stand_in_settings(knobs),
        )

    def _dispatch(self, resp: SimResponse) -> None:
        res = self._results.get(resp.request_id)
        if res is not None:
            res._deliver(resp)
            if resp.is_final:
                self._results.pop(resp.request_id, None)

    def generate_async(
        self,
        inputs: Any,
        sampling_params: Optional[SamplingParams] = None,
        lora_request: Any = None,
        prompt_adapter_request: Any = None,
        streaming: bool = False,
        kv_cache_retention_config: Any = None,
        disaggregated_params: Any = None,
        **_: Any,
    ) -> RequestOutput:
        if self._shut:
            raise RuntimeError("LLM is shutting down")
        if sampling_params is None:
            if self.tokenizer is None:
                raise ValueError(
                    "tokenizer is required to initialize a default sampling_params, "
                    "or you can explicitly specify a sampling_params"
                )
            sampling_params = SamplingParams(end_id=self.tokenizer.eos_token_id)
        if not isinstance(sampling_params, SamplingParams):
            raise TypeError(
                "The sampling_params must be type SamplingParams or None, but got "
                f"{type(sampling_params)}"
            )
        if sampling_params.end_id is None:
            if self.tokenizer is None:
                raise ValueError(
                    "tokenizer is required to reset end_id if it is None, or you "
                    "can explicitly specify the end_id for sampling_params"
                )
            sampling_params.end_id = self.tokenizer.eos_token_id
        if isinstance(inputs, dict) and "prompt_token_ids" in inputs:
            inputs = inputs["prompt_token_ids"]
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(t, int) and not isinstance(t, bool) for t in inputs)
        ):
            raise TypeError(f"The inputs must be type str or list of int, but got {type(inputs)}")
        if not self.args["enable_chunked_prefill"] and len(inputs) > self.args["max_num_tokens"]:
            # LLM._check_arguments (PyTorch backend): refused before anything is queued
            raise ValueError(
                f"The sum of prompt length ({len(inputs)}) should not exceed "
                f"max_num_tokens ({self.args['max_num_tokens']})"
            )
        beam = sampling_params.best_of if sampling_params.use_beam_search else 1
        if beam > self.args["max_beam_width"]:
            raise ValueError(
                f"sampling_params's beam_width ({beam}) should not exceed "
                f"max_beam_width ({self.args['max_beam_width']})"
            )
        rid = next(self._ids)
        result = RequestOutput(self, rid, list(inputs), sampling_params, streaming)
        self._results[rid] = result
        self._stats_done = False  # IterationResult.mark_undone()
        sim_id = self._sim.enqueue(
            inputs,
            sampling_params.max_tokens,
            streaming,
            None if sampling_params.end_id == -1 else sampling_params.end_id,
            beam,
        )
        assert sim_id == rid, "stand-in ids out of step"
        return result

    def get_stats(self, timeout: Optional[float] = 2) -> List[dict]:
        if not self.args["enable_iter_perf_stats"]:
            return []
        if self._sim.virtual:
            # Virtual clock (benchmarks): records appear only when the driver steps, so
            # there is no quiet gap to wait for; hand over what is there.
            return [json.loads(json.dumps(d)) for d in self._sim.take_stats()]
        if self._stats_done:
            return []
        out: List[dict] = []
        deadline = time.monotonic() + (timeout or 0)
        while True:
            items = self._sim.take_stats()
            if items:
                out.extend(json.loads(json.dumps(d)) for d in items)
                deadline = time.monotonic() + (timeout or 0)
                continue
            if time.monotonic() >= deadline:
                self._stats_done = True
                return out
            time.sleep(0.001)

    def shutdown(self) -> None:
        self._shut = True
        self._sim.shutdown()

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.shutdown()
        return False

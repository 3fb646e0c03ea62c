"""Stand-in for `tensorrt_llm.bindings.executor` (TensorRT-LLM 1.2.x), for tests only.

Names, keyword arguments, defaults, enum values and stats shapes were checked against
TensorRT-LLM's sources (search tool, NVIDIA/TensorRT-LLM main and 1.x):
- cpp/tensorrt_llm/pybind/executor/executor.cpp: Executor(model_path, model_type,
  executor_config); enqueue_request(s), await_responses(timeout=None | id | ids),
  cancel_request(id), get_latest_iteration_stats(), can_enqueue_requests(), shutdown().
- cpp/tensorrt_llm/pybind/executor/executorConfig.cpp: ExecutorConfig(max_beam_width=1,
  scheduler_config, kv_cache_config, enable_chunked_context=False, normalize_log_probs,
  iter_stats_max_iterations, request_stats_max_iterations, batching_type,
  max_batch_size=None, max_num_tokens=None, parallel_config=None, ...);
  SchedulerConfig(capacity_scheduler_policy=GUARANTEED_NO_EVICT, context_chunking_policy,
  dynamic_batch_config); KvCacheConfig(enable_block_reuse=True, max_tokens=None,
  max_attention_window, sink_token_length, free_gpu_memory_fraction=None, ...).
- cpp/tensorrt_llm/pybind/executor/request.cpp: Request(input_token_ids, max_tokens, *,
  streaming=False, sampling_config, output_config, end_id, pad_id, ..., client_id, ...);
  SamplingConfig(beam_width=1, *, top_k, top_p, ..., seed, temperature, min_tokens, ...,
  repetition_penalty, presence_penalty, frequency_penalty, ...); OutputConfig(...,
  exclude_input_from_output=False, ...); Response.request_id / client_id / has_error() /
  error_msg / result; Result.is_final / output_token_ids / finish_reasons / ...;
  FinishReason NOT_FINISHED, END_ID, STOP_WORDS, LENGTH, TIMED_OUT, CANCELLED.
- cpp/tensorrt_llm/pybind/executor/bindings.cpp: ModelType, CapacitySchedulerPolicy
  (MAX_UTILIZATION, GUARANTEED_NO_EVICT, STATIC_BATCH), IterationStats (timestamp,
  iter, iter_latency_ms, num_active_requests, num_queued_requests,
  num_completed_requests, max_num_active_requests, kv_cache_stats,
  inflight_batching_stats, to_json_str()), KvCacheStats, InflightBatchingStats.
- triton-inference-server/tensorrtllm_backend all_models/inflight_batcher_llm/
  tensorrt_llm/1/model.py: how the Triton model builds these (parameter names), the
  timestamp format "%m-%d-%Y %H:%M:%S.%f".
Misuse raises like pybind11 does: TypeError for wrong argument types or unknown
keywords, RuntimeError for enqueue after shutdown.

Stand-in-only knobs: the engine directory's config.json `build_config` (max_batch_size,
max_input_len, max_seq_len, max_num_tokens, max_beam_width, plugin_config.
tokens_per_block) and `stand_in` (see `stand_in_settings`); the KV pool is
free_gpu_memory_fraction * 65536 tokens, or what a named simulator profile gives, capped
by `max_tokens`; `Executor.stand_in_engine` exposes the loop (fault injection, virtual
clock). TensorRT-LLM's pool is only known from the first iteration's stats.
"""

from __future__ import annotations

import datetime
import enum
import json
import os
import queue
import threading
from typing import Any, Optional

from .._sim import SimEngine, SimResponse, stand_in_pool, stand_in_settings

__version__ = "1.2.0-stand-in"


def _bad(func: str, detail: str) -> TypeError:
    return TypeError(f"{func}(): incompatible function arguments. {detail}")


def _check(func: str, name: str, value: Any, types: tuple, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) and bool not in types:
        raise _bad(func, f"'{name}' must be {types[0].__name__}, got bool")
    if not isinstance(value, types):
        raise _bad(
            func,
            f"'{name}' must be {'/'.join(t.__name__ for t in types)}"
            f"{' or None' if optional else ''}, got {type(value).__name__}",
        )


def _kwargs(func: str, given: dict, allowed: dict) -> dict:
    unknown = set(given) - set(allowed)
    if unknown:
        raise _bad(func, f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    out = dict(allowed)
    out.update(given)
    return out


class ModelType(enum.Enum):
    DECODER_ONLY = 0
    ENCODER_ONLY = 1
    ENCODER_DECODER = 2


class BatchingType(enum.Enum):
    STATIC = 0
    INFLIGHT = 1


class CapacitySchedulerPolicy(enum.Enum):
    MAX_UTILIZATION = 0
    GUARANTEED_NO_EVICT = 1
    STATIC_BATCH = 2


class ContextChunkingPolicy(enum.Enum):
    FIRST_COME_FIRST_SERVED = 0
    EQUAL_PROGRESS = 1


class RequestType(enum.Enum):
    REQUEST_TYPE_CONTEXT_AND_GENERATION = 0
    REQUEST_TYPE_CONTEXT_ONLY = 1
    REQUEST_TYPE_GENERATION_ONLY = 2


class FinishReason(enum.Enum):
    NOT_FINISHED = 0
    END_ID = 1
    STOP_WORDS = 2
    LENGTH = 3
    TIMED_OUT = 4
    CANCELLED = 5


class SchedulerConfig:
    def __init__(
        self,
        capacity_scheduler_policy: CapacitySchedulerPolicy = CapacitySchedulerPolicy.GUARANTEED_NO_EVICT,
        context_chunking_policy: Optional[ContextChunkingPolicy] = None,
        dynamic_batch_config: Any = None,
    ) -> None:
        _check(
            "SchedulerConfig",
            "capacity_scheduler_policy",
            capacity_scheduler_policy,
            (CapacitySchedulerPolicy,),
        )
        _check(
            "SchedulerConfig",
            "context_chunking_policy",
            context_chunking_policy,
            (ContextChunkingPolicy,),
            optional=True,
        )
        self.capacity_scheduler_policy = capacity_scheduler_policy
        self.context_chunking_policy = context_chunking_policy
        self.dynamic_batch_config = dynamic_batch_config


class KvCacheConfig:
    _POSITIONAL = (
        "enable_block_reuse",
        "max_tokens",
        "max_attention_window",
        "sink_token_length",
        "free_gpu_memory_fraction",
        "host_cache_size",
        "onboard_blocks",
        "cross_kv_cache_fraction",
        "secondary_offload_min_priority",
        "event_buffer_max_size",
    )
    _DEFAULTS = dict(
        enable_block_reuse=True,
        max_tokens=None,
        max_attention_window=None,
        sink_token_length=None,
        free_gpu_memory_fraction=None,
        host_cache_size=None,
        onboard_blocks=True,
        cross_kv_cache_fraction=None,
        secondary_offload_min_priority=None,
        event_buffer_max_size=0,
        enable_partial_reuse=True,
        copy_on_partial_reuse=True,
        use_uvm=False,
        attention_dp_events_gather_period_ms=5,
        runtime_defaults=None,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self._POSITIONAL):
            raise _bad("KvCacheConfig", "too many positional arguments")
        given = dict(zip(self._POSITIONAL, args))
        given.update(kwargs)
        v = _kwargs("KvCacheConfig", given, self._DEFAULTS)
        _check("KvCacheConfig", "enable_block_reuse", v["enable_block_reuse"], (bool,))
        _check("KvCacheConfig", "max_tokens", v["max_tokens"], (int,), optional=True)
        _check(
            "KvCacheConfig",
            "free_gpu_memory_fraction",
            v["free_gpu_memory_fraction"],
            (float, int),
            optional=True,
        )
        for k, val in v.items():
            setattr(self, k, val)


class CommunicationType(enum.Enum):
    MPI = 0


class CommunicationMode(enum.Enum):
    LEADER = 0
    ORCHESTRATOR = 1


class OrchestratorConfig:
    """executorConfig.cpp: OrchestratorConfig(is_orchestrator=True,
    worker_executable_path="", orch_leader_comm=None, spawn_processes=True)."""

    def __init__(
        self,
        is_orchestrator: bool = True,
        worker_executable_path: str = "",
        orch_leader_comm: Any = None,
        spawn_processes: bool = True,
    ) -> None:
        _check("OrchestratorConfig", "is_orchestrator", is_orchestrator, (bool,))
        _check("OrchestratorConfig", "worker_executable_path", worker_executable_path, (str,))
        self.is_orchestrator = is_orchestrator
        self.worker_executable_path = worker_executable_path
        self.spawn_processes = spawn_processes


class ParallelConfig:
    def __init__(
        self,
        communication_type: Any = None,
        communication_mode: Any = None,
        device_ids: Optional[list] = None,
        participant_ids: Optional[list] = None,
        orchestrator_config: Any = None,
        num_nodes: Optional[int] = None,
    ) -> None:
        if device_ids is not None and not all(isinstance(d, int) for d in device_ids):
            raise _bad("ParallelConfig", "'device_ids' must be a list of int")
        _check(
            "ParallelConfig",
            "communication_type",
            communication_type,
            (CommunicationType,),
            optional=True,
        )
        _check(
            "ParallelConfig",
            "communication_mode",
            communication_mode,
            (CommunicationMode,),
            optional=True,
        )
        _check(
            "ParallelConfig",
            "orchestrator_config",
            orchestrator_config,
            (OrchestratorConfig,),
            optional=True,
        )
        self.communication_type = communication_type
        self.communication_mode = communication_mode
        self.device_ids = device_ids
        self.participant_ids = participant_ids
        self.orchestrator_config = orchestrator_config


class ExecutorConfig:
    _DEFAULTS = dict(
        max_beam_width=1,
        scheduler_config=None,
        kv_cache_config=None,
        enable_chunked_context=False,
        normalize_log_probs=True,
        iter_stats_max_iterations=1000,
        request_stats_max_iterations=0,
        batching_type=BatchingType.INFLIGHT,
        max_batch_size=None,
        max_num_tokens=None,
        parallel_config=None,
        peft_cache_config=None,
        logits_post_processor_config=None,
        decoding_config=None,
        use_gpu_direct_storage=False,
        gpu_weights_percent=1.0,
        max_queue_size=None,
        extended_runtime_perf_knob_config=None,
        debug_config=None,
        recv_poll_period_ms=0,
        max_seq_idle_microseconds=180_000_000,
        spec_dec_config=None,
        guided_decoding_config=None,
        additional_model_outputs=None,
        cache_transceiver_config=None,
        gather_generation_logits=False,
        mm_embedding_offloading=False,
        enable_trt_overlap=False,
        fail_fast_on_attention_window_too_large=False,
    )

    def __init__(self, **kwargs: Any) -> None:
        v = _kwargs("ExecutorConfig", kwargs, self._DEFAULTS)
        f = "ExecutorConfig"
        _check(f, "max_beam_width", v["max_beam_width"], (int,))
        _check(f, "scheduler_config", v["scheduler_config"], (SchedulerConfig,), optional=True)
        _check(f, "kv_cache_config", v["kv_cache_config"], (KvCacheConfig,), optional=True)
        _check(f, "enable_chunked_context", v["enable_chunked_context"], (bool,))
        _check(f, "iter_stats_max_iterations", v["iter_stats_max_iterations"], (int,))
        _check(f, "batching_type", v["batching_type"], (BatchingType,))
        _check(f, "max_batch_size", v["max_batch_size"], (int,), optional=True)
        _check(f, "max_num_tokens", v["max_num_tokens"], (int,), optional=True)
        _check(f, "parallel_config", v["parallel_config"], (ParallelConfig,), optional=True)
        v["scheduler_config"] = v["scheduler_config"] or SchedulerConfig()
        v["kv_cache_config"] = v["kv_cache_config"] or KvCacheConfig()
        for k, val in v.items():
            setattr(self, k, val)


class SamplingConfig:
    _DEFAULTS = dict(
        top_k=None,
        top_p=None,
        top_p_min=None,
        top_p_reset_ids=None,
        top_p_decay=None,
        seed=None,
        temperature=None,
        min_tokens=None,
        beam_search_diversity_rate=None,
        repetition_penalty=None,
        presence_penalty=None,
        frequency_penalty=None,
        prompt_ignore_length=None,
        length_penalty=None,
        early_stopping=None,
        no_repeat_ngram_size=None,
        num_return_sequences=None,
        min_p=None,
        beam_width_array=None,
    )

    def __init__(self, beam_width: int = 1, **kwargs: Any) -> None:  # the rest are kw-only
        v = _kwargs("SamplingConfig", kwargs, self._DEFAULTS)
        _check("SamplingConfig", "beam_width", beam_width, (int,))
        for name in ("top_k", "seed", "min_tokens"):
            _check("SamplingConfig", name, v[name], (int,), optional=True)
        for name in (
            "top_p",
            "temperature",
            "repetition_penalty",
            "presence_penalty",
            "frequency_penalty",
        ):
            _check("SamplingConfig", name, v[name], (float, int), optional=True)
        self.beam_width = beam_width
        for k, val in v.items():
            setattr(self, k, val)


class OutputConfig:
    def __init__(
        self,
        return_log_probs: bool = False,
        return_context_logits: bool = False,
        return_generation_logits: bool = False,
        exclude_input_from_output: bool = False,
        return_encoder_output: bool = False,
        return_perf_metrics: bool = False,
        additional_model_outputs: Any = None,
    ) -> None:
        _check("OutputConfig", "exclude_input_from_output", exclude_input_from_output, (bool,))
        self.return_log_probs = return_log_probs
        self.exclude_input_from_output = exclude_input_from_output


class Request:
    _DEFAULTS = dict(
        streaming=False,
        sampling_config=None,
        output_config=None,
        end_id=None,
        pad_id=None,
        position_ids=None,
        bad_words=None,
        stop_words=None,
        embedding_bias=None,
        external_draft_tokens_config=None,
        prompt_tuning_config=None,
        multimodal_input=None,
        multimodal_embedding=None,
        mrope_config=None,
        lora_config=None,
        lookahead_config=None,
        kv_cache_retention_config=None,
        logits_post_processor_name=None,
        logits_post_processor=None,
        encoder_input_token_ids=None,
        client_id=None,
        return_all_generated_tokens=False,
        priority=0.5,
        type=None,
        context_phase_params=None,
        encoder_input_features=None,
        encoder_output_length=None,
        cross_attention_mask=None,
        num_return_sequences=1,
        eagle_config=None,
        skip_cross_attn_blocks=None,
        guided_decoding_params=None,
        language_adapter_uid=None,
        allotted_time_ms=None,
        cache_salt_id=None,
    )

    def __init__(self, input_token_ids: list, max_tokens: int, **kwargs: Any) -> None:
        v = _kwargs("Request", kwargs, self._DEFAULTS)
        f = "Request"
        if not isinstance(input_token_ids, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in input_token_ids
        ):
            raise _bad(f, "'input_token_ids' must be List[int]")
        _check(f, "max_tokens", max_tokens, (int,))
        _check(f, "streaming", v["streaming"], (bool,))
        _check(f, "sampling_config", v["sampling_config"], (SamplingConfig,), optional=True)
        _check(f, "output_config", v["output_config"], (OutputConfig,), optional=True)
        _check(f, "end_id", v["end_id"], (int,), optional=True)
        _check(f, "pad_id", v["pad_id"], (int,), optional=True)
        _check(f, "client_id", v["client_id"], (int,), optional=True)
        _check(f, "type", v["type"], (RequestType,), optional=True)
        self.input_token_ids = list(input_token_ids)
        self.max_tokens = max_tokens
        v["sampling_config"] = v["sampling_config"] or SamplingConfig()
        v["output_config"] = v["output_config"] or OutputConfig()
        # the keyword is `type`, the property `request_type` (request.cpp)
        self.request_type = v.pop("type") or RequestType.REQUEST_TYPE_CONTEXT_AND_GENERATION
        for k, val in v.items():
            setattr(self, k, val)


class Result:
    def __init__(self) -> None:
        self.is_final = False
        self.output_token_ids: list[list[int]] = []
        self.finish_reasons: list[FinishReason] = []
        self.sequence_index = 0
        self.is_sequence_final = False
        self.decoding_iter = 0
        self.cum_log_probs = None
        self.log_probs = None
        self.context_logits = None
        self.generation_logits = None
        self.request_perf_metrics = None


class Response:
    def __init__(
        self, request_id: int, result_or_error: Any, client_id: Optional[int] = None
    ) -> None:
        self._request_id = request_id
        self._client_id = client_id
        self._result = result_or_error if isinstance(result_or_error, Result) else None
        self._error = result_or_error if isinstance(result_or_error, str) else None

    # read-only, as in the bindings (def_property_readonly)
    @property
    def request_id(self) -> int:
        return self._request_id

    @property
    def client_id(self) -> Optional[int]:
        return self._client_id

    def has_error(self) -> bool:
        return self._error is not None

    @property
    def error_msg(self) -> str:
        if self._error is None:
            raise RuntimeError(
                "[TensorRT-LLM][ERROR] Cannot get the error message for a response without error"
            )
        return self._error

    @property
    def result(self) -> Result:
        if self._result is None:
            raise RuntimeError(
                "[TensorRT-LLM][ERROR] Cannot get the result for a response with an error"
            )
        return self._result


class KvCacheStats:
    def __init__(self) -> None:
        self.max_num_blocks = self.free_num_blocks = self.used_num_blocks = 0
        self.tokens_per_block = self.alloc_total_blocks = self.alloc_new_blocks = 0
        self.reused_blocks = self.missed_blocks = 0
        self.cache_hit_rate = 0.0


class InflightBatchingStats:
    def __init__(self) -> None:
        self.num_scheduled_requests = self.num_context_requests = self.num_gen_requests = 0
        self.num_paused_requests = self.num_ctx_tokens = self.micro_batch_id = 0
        self.avg_num_decoded_tokens_per_iter = 0.0


class IterationStats:
    def __init__(self) -> None:
        self.timestamp = ""
        self.iter = 0
        self.iter_latency_ms = 0.0
        self.new_active_requests_queue_latency_ms = 0.0
        self.num_new_active_requests = 0
        self.num_active_requests = 0
        self.num_queued_requests = 0
        self.num_completed_requests = 0
        self.max_num_active_requests = 0
        self.gpu_mem_usage = self.cpu_mem_usage = self.pinned_mem_usage = 0
        self.kv_cache_stats: Optional[KvCacheStats] = None
        self.cross_kv_cache_stats = None
        self.static_batching_stats = None
        self.inflight_batching_stats: Optional[InflightBatchingStats] = None
        self._json: dict = {}

    def to_json_str(self) -> str:
        return json.dumps(self._json)

    @classmethod
    def _from_sim(cls, d: dict) -> "IterationStats":
        s = cls()
        s._json = d
        s.timestamp, s.iter, s.iter_latency_ms = d["timestamp"], d["iter"], d["iterLatencyMS"]
        s.num_new_active_requests = d["numNewActiveRequests"]
        s.num_active_requests, s.num_queued_requests = (
            d["numActiveRequests"],
            d["numQueuedRequests"],
        )
        s.num_completed_requests = d["numCompletedRequests"]
        s.max_num_active_requests = d["maxNumActiveRequests"]
        s.gpu_mem_usage, s.cpu_mem_usage = d["gpuMemUsage"], d["cpuMemUsage"]
        kv, ib = d["kvCacheStats"], d["inflightBatchingStats"]
        s.kv_cache_stats = KvCacheStats()
        s.kv_cache_stats.max_num_blocks = kv["maxNumBlocks"]
        s.kv_cache_stats.free_num_blocks = kv["freeNumBlocks"]
        s.kv_cache_stats.used_num_blocks = kv["usedNumBlocks"]
        s.kv_cache_stats.tokens_per_block = kv["tokensPerBlock"]
        s.inflight_batching_stats = InflightBatchingStats()
        b = s.inflight_batching_stats
        b.num_scheduled_requests, b.num_context_requests = (
            ib["numScheduledRequests"],
            ib["numContextRequests"],
        )
        b.num_gen_requests, b.num_paused_requests = ib["numGenRequests"], ib["numPausedRequests"]
        b.num_ctx_tokens = ib["numCtxTokens"]
        return s


def read_engine_config(model_path: Any) -> dict:
    path = os.path.join(os.fspath(model_path), "config.json")
    if not os.path.isfile(path):
        raise RuntimeError(
            f"[TensorRT-LLM][ERROR] Assertion failed: engine config not found: {path}"
        )
    with open(path) as fh:
        cfg = json.load(fh)
    build = cfg.get("build_config", {})
    return dict(
        stand_in=cfg.get("stand_in", {}),
        max_batch_size=build.get("max_batch_size", 256),
        max_input_len=build.get("max_input_len", 4096),
        max_seq_len=build.get("max_seq_len", 8192),
        max_num_tokens=build.get("max_num_tokens", 8192),
        max_beam_width=build.get("max_beam_width", 1),
        tokens_per_block=build.get("plugin_config", {}).get("tokens_per_block", 64),
    )


class Executor:
    def __init__(
        self, model_path: Any, model_type: ModelType, executor_config: ExecutorConfig
    ) -> None:
        _check("Executor", "model_path", model_path, (str, os.PathLike))
        _check("Executor", "model_type", model_type, (ModelType,))
        _check("Executor", "executor_config", executor_config, (ExecutorConfig,))
        eng = read_engine_config(model_path)
        cfg = executor_config
        if cfg.max_beam_width > eng["max_beam_width"]:
            raise RuntimeError(
                f"[TensorRT-LLM][ERROR] max_beam_width ({cfg.max_beam_width}) "
                f"exceeds the engine's ({eng['max_beam_width']})"
            )
        kv = cfg.kv_cache_config
        fraction = 0.9 if kv.free_gpu_memory_fraction is None else kv.free_gpu_memory_fraction
        knobs = eng["stand_in"]
        pool = stand_in_pool(knobs, eng["tokens_per_block"], fraction, kv.max_tokens)
        self.config = cfg
        self._responses: "queue.Queue[SimResponse]" = queue.Queue()
        self._ready = threading.Condition()
        self.stand_in_engine = SimEngine(
            total_blocks=pool // eng["tokens_per_block"],
            tokens_per_block=eng["tokens_per_block"],
            max_batch_size=min(cfg.max_batch_size or eng["max_batch_size"], eng["max_batch_size"]),
            max_num_tokens=cfg.max_num_tokens or eng["max_num_tokens"],
            policy=cfg.scheduler_config.capacity_scheduler_policy.name,
            max_input_len=eng["max_input_len"],
            max_seq_len=eng["max_seq_len"],
            chunked=cfg.enable_chunked_context,
            stats_max=cfg.iter_stats_max_iterations,
            emit=self._responses.put,
            **stand_in_settings(knobs),
        )
        self._shutdown = False

    def enqueue_request(self, request: Request) -> int:
        _check("enqueue_request", "request", request, (Request,))
        if self._shutdown:
            raise RuntimeError(
                "[TensorRT-LLM][ERROR] Assertion failed: Shutdown called, cannot enqueue requests"
            )
        if request.sampling_config.beam_width > self.config.max_beam_width:
            raise RuntimeError(
                "[TensorRT-LLM][ERROR] Assertion failed: Request beam width "
                f"{request.sampling_config.beam_width} exceeds max_beam_width "
                f"{self.config.max_beam_width}"
            )
        return self.stand_in_engine.enqueue(
            request.input_token_ids,
            request.max_tokens,
            request.streaming,
            request.end_id,
            request.sampling_config.beam_width,
            request.client_id,
        )

    def enqueue_requests(self, requests: list) -> list:
        return [self.enqueue_request(r) for r in requests]

    def await_responses(self, timeout: Any = None) -> list:
        if isinstance(timeout, int) and not isinstance(timeout, bool):
            raise _bad("await_responses", "'id'/'timeout' overloads: pass a datetime.timedelta")
        if timeout is not None and not isinstance(timeout, (datetime.timedelta, float)):
            raise _bad("await_responses", "'timeout' must be datetime.timedelta or None")
        if self._shutdown:
            raise RuntimeError("[TensorRT-LLM][ERROR] Assertion failed: Shutdown called")
        secs = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else timeout
        out: list[Response] = []
        try:
            first = (
                self._responses.get(timeout=secs)
                if (secs is None or secs > 0)
                else self._responses.get_nowait()
            )
            out.append(self._convert(first))
            while True:
                out.append(self._convert(self._responses.get_nowait()))
        except queue.Empty:
            pass
        return out

    @staticmethod
    def _convert(r: SimResponse) -> Response:
        if r.error is not None:
            return Response(r.request_id, r.error, r.client_id)
        res = Result()
        res.is_final = res.is_sequence_final = r.is_final
        res.output_token_ids = [list(r.tokens)]
        res.finish_reasons = [FinishReason[r.finish_reason]]
        return Response(r.request_id, res, r.client_id)

    def cancel_request(self, id: int) -> None:
        _check("cancel_request", "id", id, (int,))
        self.stand_in_engine.cancel(id)

    def get_latest_iteration_stats(self) -> list:
        return [IterationStats._from_sim(d) for d in self.stand_in_engine.take_stats()]

    def get_latest_request_stats(self) -> list:
        return []  # request_stats_max_iterations defaults to 0: none are kept

    def get_latest_debug_tensors(self) -> list:
        return []

    def get_kv_cache_event_manager(self) -> Any:
        return None  # only with KvCacheConfig(event_buffer_max_size > 0)

    def is_participant(self) -> bool:
        return True  # a single process is always a participant

    def can_enqueue_requests(self) -> bool:
        return not self._shutdown

    def shutdown(self) -> None:
        self._shutdown = True
        self.stand_in_engine.shutdown()

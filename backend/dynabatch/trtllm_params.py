"""The 46 parameters of TensorRT-LLM's `tensorrt_llm/config.pbtxt` template, and what
this model does with each, so a user's existing config.pbtxt loads as it is:

- USED: a ParamSpec of ours reads it (docs/PARAMETERS.md).
- IGNORED: accepted and logged as not applicable (a GPU/runtime knob with no meaning
  for the simulated engine, and not passed on to TensorRT-LLM's executor by our adapters).
- LIMITED: accepted at the values we can honour; any other value fails the load with
  a ConfigError naming the key and the reason.
An empty value or an unfilled `${...}` template means "not set" (triton_parameters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .params import ConfigError

log = logging.getLogger("dynabatch.config")

USED = "used"
IGNORED = "accepted, not applicable"
LIMITED = "limited"


@dataclass(frozen=True)
class TemplateKey:
    name: str
    treatment: str
    why: str = ""
    accepts: Callable[[str], bool] | None = None  # LIMITED: the values we honour
    accepted: str = ""  # LIMITED: those values, in words


def _one_of(*values: str) -> Callable[[str], bool]:
    return lambda v: v.strip().lower() in values


def _falsy(v: str) -> bool:
    return v.strip().lower() in ("", "0", "false", "no", "off")


def _empty(v: str) -> bool:
    return v.strip() == ""


def _ignored(name: str, why: str) -> TemplateKey:
    return TemplateKey(name, IGNORED, why)


_GPU = "a GPU runtime knob; the simulated engine has no such thing"
_LORA = "LoRA adapters are not served"
_SPEC = "speculative decoding is not served"

TEMPLATE_KEYS: tuple[TemplateKey, ...] = (
    TemplateKey("max_beam_width", USED, "TensorRT-LLM engines; requests must use beam width 1"),
    _ignored("FORCE_CPU_ONLY_INPUT_TENSORS", "inputs are always read on the CPU here"),
    TemplateKey(
        "gpt_model_type",
        LIMITED,
        "dynabatch sets the limit of an in-flight batcher; static (v1) batching has none",
        _one_of("", "inflight_fused_batching", "inflight_batching"),
        "inflight_fused_batching or inflight_batching",
    ),
    TemplateKey("gpt_model_path", USED, "the engine or checkpoint of the TensorRT-LLM engines"),
    TemplateKey(
        "encoder_model_path", LIMITED, "encoder-decoder models are not served", _empty, "empty"
    ),
    TemplateKey("max_tokens_in_paged_kv_cache", USED, "KV cache size in tokens"),
    _ignored("max_attention_window_size", "sliding-window attention is not modelled"),
    _ignored("sink_token_length", "attention sinks are not modelled"),
    TemplateKey("batch_scheduler_policy", USED, "the KV capacity policy"),
    TemplateKey("kv_cache_free_gpu_mem_fraction", USED, "KV cache size as a memory fraction"),
    _ignored("cross_kv_cache_fraction", "encoder-decoder models are not served"),
    _ignored("kv_cache_host_memory_bytes", "no host KV-cache offload"),
    _ignored("kv_cache_onboard_blocks", "no host KV-cache offload"),
    TemplateKey(
        "enable_trt_overlap",
        LIMITED,
        "TensorRT-LLM's own Python model refuses it too",
        _falsy,
        "false",
    ),
    TemplateKey("exclude_input_in_output", USED, "default of the request input of that name"),
    TemplateKey("cancellation_check_period_ms", USED, "how often cancellation is checked"),
    TemplateKey("stats_check_period_ms", USED, "LLM-API engine: stats polling period"),
    TemplateKey("iter_stats_max_iterations", USED, "TensorRT-LLM engines: stats kept"),
    _ignored("request_stats_max_iterations", "per-request stats are not collected"),
    TemplateKey("enable_kv_cache_reuse", USED, "TensorRT-LLM engines: prefix block reuse"),
    _ignored("normalize_log_probs", "log-probs are not returned"),
    TemplateKey("enable_chunked_context", USED, "chunked prefill"),
    TemplateKey("gpu_device_ids", USED, "TensorRT-LLM engines: the executor's GPUs"),
    _ignored("participant_ids", "one process serves the model"),
    TemplateKey(
        "num_nodes",
        LIMITED,
        "multi-node serving is not supported",
        _one_of("", "1"),
        "1",
    ),
    _ignored("lora_cache_optimal_adapter_size", _LORA),
    _ignored("lora_cache_max_adapter_size", _LORA),
    _ignored("lora_cache_gpu_memory_fraction", _LORA),
    _ignored("lora_cache_host_memory_bytes", _LORA),
    TemplateKey("lora_prefetch_dir", LIMITED, _LORA, _empty, "empty"),
    TemplateKey(
        "decoding_mode",
        LIMITED,
        "beam search and speculative decoding modes are not served",
        _one_of("", "auto", "top_k", "top_p", "top_k_top_p"),
        "auto, top_k, top_p or top_k_top_p",
    ),
    TemplateKey(
        "executor_worker_path", USED, "TensorRT-LLM engines: orchestrator mode's worker binary"
    ),
    TemplateKey("lookahead_window_size", LIMITED, _SPEC, _empty, "empty"),
    TemplateKey("lookahead_ngram_size", LIMITED, _SPEC, _empty, "empty"),
    TemplateKey("lookahead_verification_set_size", LIMITED, _SPEC, _empty, "empty"),
    TemplateKey("medusa_choices", LIMITED, _SPEC, _empty, "empty"),
    TemplateKey("eagle_choices", LIMITED, _SPEC, _empty, "empty"),
    _ignored("gpu_weights_percent", _GPU),
    _ignored("enable_context_fmha_fp32_acc", _GPU),
    _ignored("multi_block_mode", _GPU),
    _ignored("cuda_graph_mode", _GPU),
    _ignored("cuda_graph_cache_size", _GPU),
    _ignored("speculative_decoding_fast_logits", _SPEC),
    TemplateKey("tokenizer_dir", USED, "LLM-API engine: the tokenizer it loads"),
    TemplateKey(
        "guided_decoding_backend",
        LIMITED,
        "guided decoding is not implemented",
        _one_of("", "none"),
        "empty",
    ),
    _ignored("xgrammar_tokenizer_info_path", "guided decoding is not implemented"),
)

BY_NAME = {k.name: k for k in TEMPLATE_KEYS}
# keys no ParamSpec of ours declares: check_known lets them through
NOT_DECLARED = frozenset(k.name for k in TEMPLATE_KEYS if k.treatment != USED)


def check_template_keys(raw: Mapping[str, str]) -> None:
    """Refuse a LIMITED key set to what we cannot honour; log the IGNORED ones set."""
    for name, value in raw.items():
        key = BY_NAME.get(name)
        if key is None or not str(value).strip():
            continue
        if key.treatment == LIMITED and key.accepts is not None and not key.accepts(value):
            raise ConfigError(name, value, f"only {key.accepted} is supported: {key.why}")
        if key.treatment in (IGNORED, LIMITED):
            log.info("parameter %r = %r accepted, not applicable here: %s", name, value, key.why)


def markdown() -> str:
    rows = ["| key | here | why |", "|---|---|---|"]
    for k in TEMPLATE_KEYS:
        what = f"only {k.accepted}" if k.treatment == LIMITED else k.treatment
        rows.append(f"| `{k.name}` | {what} | {k.why} |")
    return "\n".join(rows)

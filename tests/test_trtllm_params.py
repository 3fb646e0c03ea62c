"""A user's existing TensorRT-LLM `tensorrt_llm/config.pbtxt` loads: each of the 46 keys
of its template is used, accepted and logged as not applicable, or refused by name
when set to something we cannot honour."""

from __future__ import annotations

import logging

import pytest
from dynabatch import trtllm_params
from dynabatch.config import all_param_specs, load_config, triton_parameters
from dynabatch.params import ConfigError

# The template's keys, with values a filled-in GPU deployment typically has.
USER_CONFIG = {
    "max_beam_width": "1",
    "FORCE_CPU_ONLY_INPUT_TENSORS": "no",
    "gpt_model_type": "inflight_fused_batching",
    "gpt_model_path": "/engines/llama-3-8b",
    "encoder_model_path": "",
    "max_tokens_in_paged_kv_cache": "65536",
    "max_attention_window_size": "4096",
    "sink_token_length": "0",
    "batch_scheduler_policy": "guaranteed_no_evict",
    "kv_cache_free_gpu_mem_fraction": "0.9",
    "cross_kv_cache_fraction": "0.5",
    "kv_cache_host_memory_bytes": "0",
    "kv_cache_onboard_blocks": "true",
    "enable_trt_overlap": "false",
    "exclude_input_in_output": "true",
    "cancellation_check_period_ms": "100",
    "stats_check_period_ms": "100",
    "iter_stats_max_iterations": "1000",
    "request_stats_max_iterations": "0",
    "enable_kv_cache_reuse": "false",
    "normalize_log_probs": "true",
    "enable_chunked_context": "true",
    "gpu_device_ids": "0",
    "participant_ids": "",
    "num_nodes": "1",
    "lora_cache_optimal_adapter_size": "8",
    "lora_cache_max_adapter_size": "64",
    "lora_cache_gpu_memory_fraction": "0.05",
    "lora_cache_host_memory_bytes": "1073741824",
    "lora_prefetch_dir": "",
    "decoding_mode": "top_k_top_p",
    "executor_worker_path": "/opt/tritonserver/backends/tensorrtllm/trtllmExecutorWorker",
    "lookahead_window_size": "",
    "lookahead_ngram_size": "",
    "lookahead_verification_set_size": "",
    "medusa_choices": "",
    "eagle_choices": "",
    "gpu_weights_percent": "1.0",
    "enable_context_fmha_fp32_acc": "false",
    "multi_block_mode": "true",
    "cuda_graph_mode": "false",
    "cuda_graph_cache_size": "0",
    "speculative_decoding_fast_logits": "false",
    "tokenizer_dir": "/models/llama-3-8b",
    "guided_decoding_backend": "",
    "xgrammar_tokenizer_info_path": "",
}


def test_the_table_covers_the_46_template_keys():
    assert len(USER_CONFIG) == 46
    assert {k.name for k in trtllm_params.TEMPLATE_KEYS} == set(USER_CONFIG)
    declared = {s.name for s in all_param_specs()}
    for key in trtllm_params.TEMPLATE_KEYS:  # "used" means a ParamSpec reads it
        assert (key.name in declared) == (key.treatment == trtllm_params.USED), key.name


def test_a_filled_in_user_config_loads_and_uses_what_it_can(caplog):
    with caplog.at_level(logging.INFO, logger="dynabatch.config"):
        cfg = load_config(USER_CONFIG)
    assert cfg.exclude_input_in_output is True
    assert cfg.engine_params["batch_scheduler_policy"] == "guaranteed_no_evict"
    assert cfg.engine_params["max_tokens_in_paged_kv_cache"] == 65536
    assert cfg.cancel_check_s == pytest.approx(0.1)
    assert "'multi_block_mode' = 'true' accepted, not applicable" in caplog.text


def test_the_unfilled_template_loads():
    raw = {k: "${" + k + "}" for k in USER_CONFIG}
    params = triton_parameters({"parameters": {k: {"string_value": v} for k, v in raw.items()}})
    assert params == {}
    load_config(params)


@pytest.mark.parametrize(
    "key, value",
    [
        ("gpt_model_type", "v1"),
        ("enable_trt_overlap", "true"),
        ("num_nodes", "2"),
        ("decoding_mode", "beam_search"),
        ("medusa_choices", "{0, 0, 0}"),
        ("encoder_model_path", "/engines/encoder"),
        ("lora_prefetch_dir", "/loras"),
        ("lookahead_window_size", "7"),
        ("guided_decoding_backend", "xgrammar"),
    ],
)
def test_a_value_we_cannot_honour_fails_the_load_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"'{key}' = '{value}'.*only") as info:
        load_config({**USER_CONFIG, key: value})
    assert info.value.name == key

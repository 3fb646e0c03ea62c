"""config.pbtxt parameters: typed parsing, clear errors, the generated docs table, and
a model that refuses to load on an invalid or unknown parameter (real tritonserver)."""

from pathlib import Path

import pytest
from dynabatch.config import (
    MODEL_PARAMS,
    all_param_specs,
    load_config,
    render_parameters_doc,
    triton_parameters,
)
from dynabatch.params import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_parameters_doc_matches_the_specs():
    doc = (ROOT / "docs" / "PARAMETERS.md").read_text()
    assert doc == render_parameters_doc(), (
        "docs/PARAMETERS.md is stale: python -m dynabatch.config > docs/PARAMETERS.md"
    )
    for spec in all_param_specs():
        assert f"`{spec.name}`" in doc


def test_issue_parameters_are_declared():
    names = {s.name for s in all_param_specs()}
    for name in (
        "engine",
        "batch_scheduler_policy",
        "max_tokens_in_paged_kv_cache",
        "kv_cache_free_gpu_mem_fraction",
        "enable_chunked_context",
        "batch_policy",
        "max_batch_size",
        "max_queue_size",
        "queue_timeout_ms",
        "max_prompt_len",
        "max_new_tokens_limit",
        "sim_profile",
        "sim_time_scale",
    ):
        assert name in names


def test_load_config_types_and_defaults():
    cfg = load_config(
        {
            "engine": "simulated",
            "batch_policy": "static",
            "max_queue_size": "7",
            "queue_timeout_ms": "250",
            "enable_chunked_context": "false",
        }
    )
    assert cfg.policy == "static" and cfg.max_queue_size == 7
    assert cfg.queue_timeout_s == pytest.approx(0.25)
    assert cfg.engine_params["enable_chunked_context"] is False
    assert cfg.max_batch_size == next(s.default for s in MODEL_PARAMS if s.name == "max_batch_size")


@pytest.mark.parametrize(
    "raw,name,allowed",
    [
        ({"engine": "tensorrt"}, "engine", "one of simulated, trtllm_executor, trtllm_llmapi"),
        ({"max_queue_size": "-1"}, "max_queue_size", "int in [0, inf]"),
        ({"max_batch_size": "lots"}, "max_batch_size", "int in [1, 4096]"),
        ({"batch_policy": "greedy"}, "batch_policy", "one of"),
        ({"enable_chunked_context": "maybe"}, "enable_chunked_context", "true or false"),
        ({"max_queue_sise": "4"}, "max_queue_sise", "unknown parameter"),
    ],
)
def test_invalid_parameter_names_it_and_what_is_allowed(raw, name, allowed):
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert f"'{name}'" in str(info.value) and allowed in str(info.value)


def test_triton_parameters_skips_unfilled_templates():
    cfg = {"parameters": {"a": {"string_value": "1"}, "b": {"string_value": "${b}"}}}
    assert triton_parameters(cfg) == {"a": "1"}
    # tensorrtllm_backend keys with no meaning here load (and are ignored)
    load_config({"FORCE_CPU_ONLY_INPUT_TENSORS": "no", "gpt_model_type": "inflight_fused_batching"})


@pytest.mark.server
@pytest.mark.parametrize(
    "params,expected",
    [
        ({"max_queue_size": "-3"}, "invalid parameter 'max_queue_size'"),
        ({"batch_policy": "fastest"}, "invalid parameter 'batch_policy'"),
        ({"max_queue_sise": "4"}, "invalid parameter 'max_queue_sise'"),
    ],
)
def test_invalid_parameter_fails_model_load(triton, params, expected):
    from tritonclient.utils import InferenceServerException

    triton.unload("tensorrt_llm")  # a failed reload would leave the old version serving
    with pytest.raises(InferenceServerException) as info:
        triton.load("tensorrt_llm", **params)
    assert expected in str(info.value), str(info.value)
    assert not triton.is_ready("tensorrt_llm")
    triton.load("tensorrt_llm")  # a good config loads again on the same server
    assert triton.is_ready("tensorrt_llm")

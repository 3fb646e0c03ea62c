"""All config.pbtxt parameters in one place: the model's own, the controller's, each engine's.

`load_config` turns Triton's parameter map into a typed ModelConfig and fails with a
ConfigError naming the parameter for any invalid or unknown value, so a typo stops
the model from loading instead of being silently ignored.
`render_parameters_doc` writes docs/PARAMETERS.md from the same ParamSpecs
(`python -m dynabatch.config > docs/PARAMETERS.md`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import trtllm_params
from .controller import CONTROLLER_PARAMS
from .engines.factory import ENGINE_NAMES, engine_param_specs
from .params import ConfigError, ParamSpec, check_known, markdown_table, parse_params
from .queue_order import QUEUE_ORDER_PARAMS, QueueOrderConfig, queue_order_config

log = logging.getLogger("dynabatch.config")

MODEL_PARAMS: list[ParamSpec] = [
    ParamSpec(
        "engine", str, "simulated", "executor behind the model", choices=ENGINE_NAMES, group="model"
    ),
    ParamSpec(
        "max_batch_size",
        int,
        64,
        "largest in-flight batch: the executor is built with it and the controller "
        "never sets a higher limit (B_max)",
        min=1,
        max=4096,
        group="model",
    ),
    ParamSpec(
        "max_queue_size",
        int,
        1024,
        "requests waiting for admission before new ones are rejected (0 = unbounded)",
        min=0,
        group="model",
    ),
    ParamSpec(
        "queue_timeout_ms",
        float,
        0.0,
        "a request still waiting for admission after this long fails (0 = wait forever)",
        min=0,
        group="model",
    ),
    ParamSpec(
        "max_prompt_len",
        int,
        0,
        "longest accepted prompt in tokens (0 = bounded only by the KV cache)",
        min=0,
        group="model",
    ),
    ParamSpec(
        "max_new_tokens_limit",
        int,
        4096,
        "largest accepted request_output_len",
        min=1,
        group="model",
    ),
    ParamSpec(
        "vocab_size",
        int,
        0,
        "input_ids (and end_id, pad_id) must lie in [0, vocab_size); 0 = the vocabulary "
        "of the model behind the engine where it has one, else no check (the simulated "
        "engine has none)",
        min=0,
        group="model",
    ),
    ParamSpec(
        "exclude_input_in_output",
        bool,
        False,
        "non-streaming output_ids hold only generated tokens (false, TensorRT-LLM's "
        "default: prompt + generated); the request input of the same name overrides it",
        group="model",
    ),
    ParamSpec(
        "cancellation_check_period_ms",
        float,
        50.0,
        "how often queued and running requests are checked for client cancellation",
        min=1,
        max=10000,
        group="model",
    ),
    ParamSpec(
        "metrics_interval_ms",
        float,
        100.0,
        "how often the /metrics gauges are refreshed",
        min=10,
        max=60000,
        group="model",
    ),
    ParamSpec(
        "loop_poll_ms",
        float,
        10.0,
        "longest wait for engine events in one serving-loop pass",
        min=1,
        max=1000,
        group="model",
    ),
    # fault handling (docs/RELIABILITY.md)
    ParamSpec(
        "engine_watchdog_ms",
        float,
        60000.0,
        "an engine that holds requests but finishes no iteration for this long is "
        "declared stalled: its requests fail and it is rebuilt (0 = no watchdog)",
        min=0,
        group="model",
    ),
    ParamSpec(
        "engine_recovery",
        bool,
        True,
        "after an engine fault or stall, rebuild the engine and keep serving (false: "
        "later requests get an error until the model is reloaded)",
        group="model",
    ),
    ParamSpec(
        "enable_fault_injection",
        bool,
        False,
        "TEST ONLY: honour the `inject_fault` request parameter (simulated engine "
        "only; makes the engine raise or stall); never enable in production",
        group="model",
    ),
    *QUEUE_ORDER_PARAMS,  # admission order and tenants (queue_order.py)
]

# Keys of TensorRT-LLM's tensorrt_llm config.pbtxt template that no ParamSpec declares:
# accepted (logged, or refused where we cannot honour the value) so an existing config
# can be reused as is (trtllm_params).
TRTLLM_COMPAT_IGNORED = trtllm_params.NOT_DECLARED


def controller_param_specs() -> list[ParamSpec]:
    return list(CONTROLLER_PARAMS)


def _dedupe(specs: list[ParamSpec]) -> list[ParamSpec]:
    seen: dict[str, ParamSpec] = {}
    for s in specs:
        seen.setdefault(s.name, s)
    return list(seen.values())


def all_param_specs() -> list[ParamSpec]:
    """Every parameter any part of the model reads (first declaration wins a shared name)."""
    specs = MODEL_PARAMS + controller_param_specs()
    for name in ENGINE_NAMES:
        specs += engine_param_specs(name)
    return _dedupe(specs)


@dataclass(frozen=True)
class ModelConfig:
    engine: str
    max_batch_size: int
    max_queue_size: int
    queue_timeout_s: float
    max_prompt_len: int
    max_new_tokens_limit: int
    vocab_size: int
    exclude_input_in_output: bool
    cancel_check_s: float
    metrics_interval_s: float
    loop_poll_s: float
    policy: str
    controller_params: dict[str, Any] = field(default_factory=dict)
    engine_params: dict[str, Any] = field(default_factory=dict)
    engine_watchdog_s: float = 60.0
    engine_recovery: bool = True
    enable_fault_injection: bool = False
    queue_order: QueueOrderConfig = field(default_factory=QueueOrderConfig)


def triton_parameters(model_config: Mapping[str, Any]) -> dict[str, str]:
    """{key: string_value} from Triton's model config; unfilled `${...}` templates
    (tensorrtllm_backend's fill_template convention) count as not set."""
    out: dict[str, str] = {}
    for key, value in (model_config.get("parameters") or {}).items():
        text = value.get("string_value", "") if isinstance(value, Mapping) else str(value)
        if not text.strip().startswith("${"):
            out[key] = text
    return out


def load_config(raw: Mapping[str, str]) -> ModelConfig:
    """Parse and check every parameter; raise ConfigError naming the first bad one."""
    model = parse_params(MODEL_PARAMS, raw)
    ctrl_specs = controller_param_specs()
    controller = parse_params(ctrl_specs, raw)
    engine_specs = engine_param_specs(model["engine"])
    engine = parse_params(engine_specs, raw)
    known = list(MODEL_PARAMS) + ctrl_specs
    for name in ENGINE_NAMES:
        known += engine_param_specs(name)
    check_known(raw, known, ignore=lambda name: name in TRTLLM_COMPAT_IGNORED)
    trtllm_params.check_template_keys(raw)
    own = {s.name for s in MODEL_PARAMS + ctrl_specs + engine_specs}
    for name in raw:
        if name not in own and raw[name].strip():
            log.warning("parameter %r has no effect with engine=%s", name, model["engine"])
    policy = controller.get("batch_policy")
    if policy is None:
        raise ConfigError("batch_policy", None, "the controller package declares no batch_policy")
    return ModelConfig(
        engine=model["engine"],
        max_batch_size=model["max_batch_size"],
        max_queue_size=model["max_queue_size"],
        queue_timeout_s=model["queue_timeout_ms"] / 1000.0,
        max_prompt_len=model["max_prompt_len"],
        max_new_tokens_limit=model["max_new_tokens_limit"],
        vocab_size=model["vocab_size"],
        exclude_input_in_output=model["exclude_input_in_output"],
        cancel_check_s=model["cancellation_check_period_ms"] / 1000.0,
        metrics_interval_s=model["metrics_interval_ms"] / 1000.0,
        loop_poll_s=model["loop_poll_ms"] / 1000.0,
        policy=policy,
        controller_params=controller,
        engine_params=engine,
        engine_watchdog_s=model["engine_watchdog_ms"] / 1000.0,
        engine_recovery=model["engine_recovery"],
        enable_fault_injection=model["enable_fault_injection"],
        queue_order=queue_order_config(model),
    )


def render_parameters_doc() -> str:
    """docs/PARAMETERS.md: one table per component, straight from the ParamSpecs."""
    parts = [
        "# config.pbtxt parameters",
        "",
        "Generated from the ParamSpecs by `python -m dynabatch.config > docs/PARAMETERS.md`;",
        "a test fails when this file and the code disagree. Every value is a string in",
        '`parameters { key: "..." value: { string_value: "..." } }`. An empty value or an',
        "unfilled `${...}` template means the default. An invalid value or an unknown key",
        "fails the model load with a message naming the parameter and what is allowed.",
        "",
        "## Model (admission limits, serving loop)",
        "",
        markdown_table(MODEL_PARAMS),
        "",
        "## Controller",
        "",
        markdown_table(controller_param_specs()),
    ]
    for name in ENGINE_NAMES:
        specs = engine_param_specs(name)
        parts += [
            "",
            f"## Engine `{name}`",
            "",
            markdown_table(specs) if specs else "(not part of this install)",
        ]
    parts += [
        "",
        "## TensorRT-LLM's template keys",
        "",
        "Every key of TensorRT-LLM's `tensorrt_llm/config.pbtxt` template loads: used "
        "(a parameter above), accepted and logged as not applicable, or accepted only "
        "at the values listed (any other value fails the load, naming the key):",
        "",
        trtllm_params.markdown(),
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render_parameters_doc(), end="")

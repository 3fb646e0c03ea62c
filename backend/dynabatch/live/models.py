"""Where the model directories live and the config.pbtxt parameters the live runs set.

The parameter names are the Triton model's (docs/PARAMETERS.md); they are kept here
in one place so a rename touches one file.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MODEL_REPOSITORY = ROOT / "model_repository"  # the default: one routable LLM
DYNAMIC_MODEL = MODEL_REPOSITORY / "tensorrt_llm"
# the demo's baseline lives in the demo's own repository, so that the default one
# exposes a single set of nv_trt_llm_* series to the inference gateway
STATIC_MODEL = ROOT / "model_repositories" / "demo" / "tensorrt_llm_static"
# the same model, not decoupled (unary gRPC/HTTP infer), served under the same name
UNARY_MODEL = ROOT / "model_repositories" / "unary" / "tensorrt_llm"
BARE_STREAM_MODEL = ROOT / "tests" / "models" / "bare_stream"


def simulated_params(profile: str, time_scale: float, **extra: object) -> dict[str, str]:
    """Parameters that put the simulated engine behind the model, in real time."""
    params = {"engine": "simulated", "sim_profile": profile, "sim_time_scale": f"{time_scale:g}"}
    params.update({k: str(v) for k, v in extra.items()})
    return params


def live_spec(label: str, params: dict[str, str]):
    """The virtual-clock twin of a served configuration: (PolicySpec, engine kwargs,
    engine max batch), read from the very parameters the served model was given."""
    from ..bench.runner import PolicySpec
    from ..config import load_config

    cfg = load_config(params)
    # Controller parameters as parsed by the model's own config code; defaults included.
    ctrl = tuple(sorted((k, v) for k, v in cfg.controller_params.items() if k != "batch_policy"))
    e = cfg.engine_params
    capacity = e["batch_scheduler_policy"]
    # The executor's keyword arguments, as engines.simulated.from_parameters passes them.
    engine_kw = {
        "max_num_tokens": e["max_num_tokens"],
        "tokens_per_block": e["tokens_per_block"],
        "kv_cache_free_gpu_mem_fraction": e["kv_cache_free_gpu_mem_fraction"],
        "max_tokens_in_paged_kv_cache": e["max_tokens_in_paged_kv_cache"] or None,
        "enable_chunked_context": e["enable_chunked_context"],
        "seed": e["sim_seed"],
    }
    spec = PolicySpec(
        label,
        cfg.policy,
        capacity,
        ctrl,
        max_batch_size=cfg.max_batch_size,
        static=cfg.policy == "static",
    )
    return spec, engine_kw, cfg.max_batch_size

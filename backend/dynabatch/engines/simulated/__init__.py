"""The simulated GPU executor: TensorRT-LLM-like in-flight batching over a paged KV
cache, step latency from a roofline model of a named GPU x model profile.

`from_parameters` builds it from config.pbtxt parameters (declared in SIMULATED_PARAMS).
Default capacity policy: max_utilization (TensorRT-LLM's Triton model defaults to
guaranteed_no_evict). We default to max_utilization because that is where a batch
limit matters: guaranteed_no_evict already caps the batch by reserving max tokens and
never pauses; max_utilization uses the cache fully and pauses (recomputes) requests
when it overflows, which the controller exists to prevent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...params import ConfigError, ParamSpec, parse_params
from .executor import SimulatedExecutor
from .profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile
from .scheduler import CONTEXT_BLOCKS, POLICIES

_G = "simulated engine"

SIMULATED_PARAMS: list[ParamSpec] = [
    ParamSpec(
        "sim_profile",
        str,
        DEFAULT_PROFILE,
        "GPU x model profile of the simulated executor (`dynabatch profiles` lists them)",
        choices=tuple(PROFILES),
        group=_G,
    ),
    ParamSpec(
        "sim_time_scale",
        float,
        1.0,
        "real-time mode: wall seconds per simulated second (2 = twice as slow as the modelled GPU)",
        min=1e-3,
        max=1e3,
        group=_G,
    ),
    ParamSpec("sim_seed", int, 0, "seed of the pseudo-tokens", min=0, group=_G),
    ParamSpec(
        "batch_scheduler_policy",
        str,
        "max_utilization",
        "KV capacity policy: "
        "max_utilization (allocate per token, pause the newest request on overflow) or "
        "guaranteed_no_evict (reserve prompt + max tokens at admission)",
        choices=POLICIES,
        group=_G,
    ),
    ParamSpec(
        "max_tokens_in_paged_kv_cache",
        int,
        0,
        "KV cache size in tokens; 0 = derive from "
        "the profile's GPU memory and kv_cache_free_gpu_mem_fraction",
        min=0,
        group=_G,
    ),
    ParamSpec(
        "kv_cache_free_gpu_mem_fraction",
        float,
        0.9,
        "fraction of GPU memory left after the weights that holds the KV cache",
        min=0.01,
        max=1.0,
        group=_G,
    ),
    ParamSpec(
        "enable_chunked_context",
        bool,
        True,
        "prefill long prompts in chunks under max_num_tokens",
        group=_G,
    ),
    ParamSpec(
        "max_num_tokens",
        int,
        8192,
        "most tokens (prefill + decode) in one iteration",
        min=1,
        group=_G,
    ),
    ParamSpec("tokens_per_block", int, 64, "tokens per paged KV block", min=1, max=4096, group=_G),
    ParamSpec(
        "sim_context_blocks",
        str,
        "prompt",
        "when a prompt's KV blocks are taken: prompt (all at its first chunk, as "
        "TensorRT-LLM 1.2) or chunk (chunk by chunk; a what-if, docs/SIMULATOR.md)",
        choices=CONTEXT_BLOCKS,
        group=_G,
    ),
]


def from_parameters(
    params: Mapping[str, Any], *, max_batch_size: int, realtime: bool
) -> SimulatedExecutor:
    """Build (and in real time, start) the executor from raw or parsed parameters."""
    p = parse_params(SIMULATED_PARAMS, params)
    if p["max_num_tokens"] < p["tokens_per_block"]:
        raise ConfigError(
            "max_num_tokens",
            p["max_num_tokens"],
            f"int >= tokens_per_block ({p['tokens_per_block']})",
        )
    try:
        engine = SimulatedExecutor(
            p["sim_profile"],
            max_batch_size=max_batch_size,
            max_num_tokens=p["max_num_tokens"],
            tokens_per_block=p["tokens_per_block"],
            capacity_policy=p["batch_scheduler_policy"],
            kv_cache_free_gpu_mem_fraction=p["kv_cache_free_gpu_mem_fraction"],
            max_tokens_in_paged_kv_cache=p["max_tokens_in_paged_kv_cache"] or None,
            enable_chunked_context=p["enable_chunked_context"],
            seed=p["sim_seed"],
            context_blocks=p["sim_context_blocks"],
        )
    except ValueError as exc:
        raise ConfigError("sim_profile", p["sim_profile"], str(exc)) from None
    if realtime:
        engine.start_realtime(p["sim_time_scale"])
    return engine


__all__ = [
    "SimulatedExecutor",
    "SIMULATED_PARAMS",
    "from_parameters",
    "Profile",
    "PROFILES",
    "get_profile",
]

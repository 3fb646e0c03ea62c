"""Batch controllers: turn engine iteration stats into an in-flight batch limit.

`make_controller(policy, params, max_batch_size=)` builds one by name;
`CONTROLLER_PARAMS` declares every config.pbtxt parameter of every policy. Controllers
take the KV capacity from each iteration's stats (kv_capacity.py), never at build time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engines.base import KvCapacity
from ..params import ConfigError, parse_params
from .adaptive import AdaptiveController
from .base import Controller, LimitDecision
from .config import CONTROLLER_PARAMS, POLICIES, SPECS
from .paper import PaperController, PaperMemoryController, PaperSlaController
from .sglang_ratio import SglangRatioController
from .static import StaticController
from .trtllm_tuner import TrtllmTunerController

__all__ = ["CONTROLLER_PARAMS", "POLICIES", "Controller", "LimitDecision", "make_controller"]


def make_controller(
    policy: str,
    params: Mapping[str, Any] = {},
    *,
    max_batch_size: int,
    kv_capacity: KvCapacity | None = None,
) -> Controller:
    """Build the named policy; `params` may hold strings (config.pbtxt) or typed values.

    `kv_capacity` is accepted for older callers and not used: a controller reads the
    KV pool from every iteration's stats (it may change, or be unknown at build time).
    """
    del kv_capacity
    policy = SPECS["batch_policy"].parse(policy)
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    p = parse_params(CONTROLLER_PARAMS, params)
    upper = p["batch_size_upper"] or max_batch_size
    if upper > max_batch_size:
        raise ConfigError(
            "batch_size_upper", upper, f"at most the engine's max_batch_size ({max_batch_size})"
        )
    lower = p["batch_size_lower"]
    if lower > upper:
        raise ConfigError("batch_size_lower", lower, f"at most batch_size_upper ({upper})")
    if policy == "static":
        size = p["static_batch_size"] or upper
        if size > max_batch_size:
            raise ConfigError(
                "static_batch_size", size, f"at most the engine's max_batch_size ({max_batch_size})"
            )
        return StaticController(size)
    if policy in ("paper_memory", "paper"):
        memory = PaperMemoryController(memory_factor=p["memory_factor"], lower=lower, upper=upper)
        if policy == "paper_memory":
            return memory
    if policy in ("paper_sla", "paper"):
        sla = PaperSlaController(
            d_sla_ms=p["tpot_sla_ms"],
            eps_ms=p["tpot_sla_tolerance_ms"],
            alpha=p["sla_window_alpha"],
            delta=p["sla_step_delta"],
            smoothing=p["sla_smoothing"],
            lower=lower,
            upper=upper,
        )
        return sla if policy == "paper_sla" else PaperController(memory, sla)
    if policy == "trtllm_tuner":
        return TrtllmTunerController(
            window=p["tuner_window"],
            lower=lower,
            upper=upper,
        )
    if policy == "sglang_ratio":
        return SglangRatioController(
            init_ratio=p["sglang_init_ratio"],
            min_ratio_factor=p["sglang_min_ratio_factor"],
            decay_steps=p["sglang_decay_steps"],
            clip_max_new_tokens=p["sglang_clip_max_new_tokens"],
            lower=lower,
            upper=upper,
        )
    return AdaptiveController(
        lower=lower,
        upper=upper,
        kv_target_fraction=p["kv_target_fraction"],
        kv_overflow_prob=p["kv_overflow_prob"],
        length_window=p["length_window"],
        tpot_sla_ms=p["tpot_sla_ms"],
        tpot_percentile=p["tpot_percentile"],
        pause_backoff=p["pause_backoff"],
        pause_recovery_s=p["pause_recovery_s"],
        kv_probe_max=p["kv_probe_max"],
        limit_tolerance=p["limit_tolerance"],
        stabilization_s=p["stabilization_s"],
        ttft_sla_s=p["ttft_sla_s"],
        forecast_overflow_prob=p["forecast_overflow_prob"],
    )

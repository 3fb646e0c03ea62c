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
from .base import Controller, LimitDecision
from .config import CONTROLLER_PARAMS, POLICIES, SPECS
from .registry import Bounds, entry

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
    return entry(policy).build(p, Bounds(lower, upper, max_batch_size))

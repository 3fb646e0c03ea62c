"""The policy registry: each policy names its own parameters and builds itself.

A policy module exposes `build(p, bounds) -> Controller` and `PARAM_NAMES` (its
config.pbtxt parameters, declared in controller/config.py); `POLICY_MODULES` lists
which module serves which `batch_policy`. `make_controller` parses the parameters,
checks the bounds every policy shares and calls the policy's own `build`: adding a
policy is a module and one line here, not another branch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .base import Controller


@dataclass(frozen=True)
class Bounds:
    """The limits every policy shares (already checked against each other)."""

    lower: int  # batch_size_lower, B_min
    upper: int  # batch_size_upper (0 -> max_batch_size), B_max
    max_batch_size: int  # the engine's largest batch


@dataclass(frozen=True)
class PolicyEntry:
    name: str
    param_names: tuple[str, ...]  # its own parameters (besides the shared bounds)
    build: Callable[[Mapping[str, Any], Bounds], Controller]


# batch_policy -> the module that implements it (and the name of its builder there)
POLICY_MODULES: dict[str, tuple[str, str]] = {
    "adaptive": ("dynabatch.controller.adaptive", "build"),
    "paper": ("dynabatch.controller.paper", "build_paper"),
    "paper_memory": ("dynabatch.controller.paper", "build_memory"),
    "paper_sla": ("dynabatch.controller.paper", "build_sla"),
    "static": ("dynabatch.controller.static", "build"),
    "trtllm_tuner": ("dynabatch.controller.trtllm_tuner", "build"),
    "sglang_ratio": ("dynabatch.controller.sglang_ratio", "build"),
}

# parameters every policy reads (the bounds) or that choose the policy
SHARED_PARAMS = ("batch_policy", "batch_size_lower", "batch_size_upper")


def entry(policy: str) -> PolicyEntry:
    module_name, builder = POLICY_MODULES[policy]
    module = importlib.import_module(module_name)
    build = getattr(module, builder)
    return PolicyEntry(policy, tuple(getattr(build, "param_names", ())), build)


def params_of(*names: str) -> Callable[[Callable], Callable]:
    """Decorator: record which parameters a builder reads (its `param_names`)."""

    def mark(build: Callable) -> Callable:
        build.param_names = names  # type: ignore[attr-defined]
        return build

    return mark

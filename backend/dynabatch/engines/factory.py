"""Pick an engine by the `engine` parameter.

Each engine module exposes `from_parameters(params, *, max_batch_size, realtime)` and a
list of ParamSpecs. They are imported only when asked for, so a missing optional
dependency (tensorrt_llm) never breaks the other engines.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..params import ConfigError, ParamSpec
from .base import Engine

# engine name -> (module, name of its ParamSpec list)
ENGINES: dict[str, tuple[str, str]] = {
    "simulated": ("dynabatch.engines.simulated", "SIMULATED_PARAMS"),
    "trtllm_executor": ("dynabatch.engines.trtllm_executor", "TRTLLM_EXECUTOR_PARAMS"),
    "trtllm_llmapi": ("dynabatch.engines.trtllm_llmapi", "TRTLLM_LLMAPI_PARAMS"),
}
ENGINE_NAMES = tuple(ENGINES)


def _module(engine_name: str):
    if engine_name not in ENGINES:
        raise ConfigError("engine", engine_name, "one of " + ", ".join(ENGINE_NAMES))
    return importlib.import_module(ENGINES[engine_name][0])


def engine_param_specs(engine_name: str) -> list[ParamSpec]:
    """The ParamSpecs of one engine; [] when its module is not part of this install."""
    module_name, attr = ENGINES[engine_name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return []
        raise
    return list(getattr(module, attr, []))


def make_engine(
    engine_name: str, params: Mapping[str, Any], *, max_batch_size: int, realtime: bool
) -> Engine:
    """Build the named engine from its parsed parameters (see engine_param_specs)."""
    return _module(engine_name).from_parameters(
        params, max_batch_size=max_batch_size, realtime=realtime
    )

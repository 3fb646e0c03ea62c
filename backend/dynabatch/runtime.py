"""The runtime factory: the one place that builds engine + controller + serving core.

The Triton model builds its runtime here at load and again when the watchdog recovers
from an engine fault; the benchmark builds its engines here too (`make_bench_engine`),
so serving and benchmarks construct the same objects the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ModelConfig
from .controller import make_controller
from .controller.base import Controller
from .core import ServingCore
from .engines.base import Engine
from .engines.factory import make_engine
from .gate import AdmissionGate
from .params import ConfigError


@dataclass
class Runtime:
    engine: Engine
    controller: Controller
    core: ServingCore


def build_engine_and_controller(cfg: ModelConfig) -> tuple[Engine, Controller]:
    """A fresh engine (real time) and a fresh controller for it; the engine is shut down
    again when the controller cannot be built."""
    engine = make_engine(
        cfg.engine, cfg.engine_params, max_batch_size=cfg.max_batch_size, realtime=True
    )
    try:
        controller = make_controller(
            cfg.policy, cfg.controller_params, max_batch_size=cfg.max_batch_size
        )
    except BaseException:
        engine.shutdown()
        raise
    return engine, controller


def build_runtime(cfg: ModelConfig) -> Runtime:
    """Engine, controller and serving core for a model configuration (model load)."""
    engine, controller = build_engine_and_controller(cfg)
    core = ServingCore(engine, controller, AdmissionGate(cfg.max_queue_size, cfg.queue_timeout_s))
    return Runtime(engine, controller, core)


def make_bench_engine(
    profile: str,
    *,
    capacity_policy: str,
    max_batch_size: int,
    engine: str = "simulated",
    standin: bool = False,
    **engine_kw: Any,
) -> Any:
    """An engine on a virtual clock for the benchmark: the simulated executor, or (with
    `standin`) a TensorRT-LLM adapter over the stand-in driven by the same simulator."""
    if engine == "simulated":
        from .engines.simulated import SimulatedExecutor

        return SimulatedExecutor(
            profile, max_batch_size=max_batch_size, capacity_policy=capacity_policy, **engine_kw
        )
    if not standin:
        raise ConfigError(
            "engine",
            engine,
            "TensorRT-LLM runs in real time only; benchmark its adapter on the stand-in "
            "with --standin, or use engine=simulated",
        )
    from .engines.standin import make_standin_engine

    return make_standin_engine(
        engine, profile, capacity_policy=capacity_policy, max_batch_size=max_batch_size, **engine_kw
    )

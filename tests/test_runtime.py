"""The runtime factory: one place builds engine + controller + core (model load and
engine recovery both use it)."""

from __future__ import annotations

import pytest
from dynabatch import runtime
from dynabatch.config import load_config


def test_build_runtime_wires_engine_controller_and_gate_from_the_config():
    cfg = load_config(
        {"sim_profile": "zero-latency", "batch_policy": "sglang_ratio", "max_queue_size": "7"}
    )
    rt = runtime.build_runtime(cfg)
    try:
        assert rt.core.engine is rt.engine and rt.core.controller is rt.controller
        assert rt.controller.name == "sglang_ratio"
        assert rt.engine.max_batch_size == cfg.max_batch_size
        assert rt.core.gate.max_queue_size == 7
    finally:
        rt.engine.shutdown()


def test_a_controller_that_cannot_be_built_shuts_the_new_engine_down(monkeypatch):
    cfg = load_config({"sim_profile": "zero-latency"})
    built = []
    real_make_engine = runtime.make_engine

    def make_engine(*a, **kw):
        built.append(real_make_engine(*a, **kw))
        return built[-1]

    def make_controller(*a, **kw):
        raise ValueError("no controller today")

    monkeypatch.setattr(runtime, "make_engine", make_engine)
    monkeypatch.setattr(runtime, "make_controller", make_controller)
    with pytest.raises(ValueError, match="no controller today"):
        runtime.build_engine_and_controller(cfg)
    assert built and built[0]._closed  # the simulated engine was shut down

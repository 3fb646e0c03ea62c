"""The same workload through each engine adapter: the TensorRT-LLM adapters on the
stand-in (driven by the simulated executor, virtual clock) match engine=simulated."""

from __future__ import annotations

import pytest
from dynabatch.bench.metrics import Slo
from dynabatch.bench.runner import MAXU, PolicySpec, run_policy
from dynabatch.bench.workload import load_trace
from dynabatch.params import ConfigError

SPECS = [
    PolicySpec("adaptive", "adaptive"),
    PolicySpec("static-16/maxu", "static", MAXU, (("static_batch_size", 16),), static=True),
]


def _row(engine: str, spec: PolicySpec) -> dict:
    wl = load_trace("conv", first_n=60, rate_scale=4.0)
    kw = {} if engine == "simulated" else {"engine": engine, "standin": True}
    return run_policy(
        wl, "llama-2-13b-a100-40gb", spec, slo=Slo(2.0, 0.2), max_batch_size=64, engine_kw=kw
    ).row


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_adapters_on_the_stand_in_match_the_simulated_engine(spec):
    want = _row("simulated", spec)
    if spec.static:  # the static limit overfills the pool: pauses must match too
        assert want["paused"] > 0, "the workload must put the pool under pressure"
    for engine in ("trtllm_executor", "trtllm_llmapi"):
        got = _row(engine, spec)
        assert got["output_tok_s"] == pytest.approx(want["output_tok_s"], rel=0.02), engine
        assert got["paused"] == want["paused"], engine
        assert got["completed"] == want["completed"], engine


def test_tensorrt_llm_on_a_virtual_clock_needs_the_stand_in():
    from dynabatch.runtime import make_bench_engine

    with pytest.raises(ConfigError, match="--standin"):
        make_bench_engine(
            "zero-latency", capacity_policy=MAXU, max_batch_size=8, engine="trtllm_executor"
        )


def test_cli_says_what_is_missing_without_standin(capsys):
    from dynabatch.cli import main

    assert main(["bench", "--trace", "conv", "--first-n", "5", "--engine", "trtllm_llmapi"]) == 2
    assert "--standin" in capsys.readouterr().err

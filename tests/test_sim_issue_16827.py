"""TensorRT-LLM issue 16827's scenario (docs/SIMULATOR.md): 128 x 16,384 in / 512 out,
closed-loop concurrency 32, Llama-3.x-70B FP8 on one H200. Pins what the docs claim."""

import pytest
from dynabatch.bench.closed_loop import run_closed_loop
from dynabatch.bench.metrics import Slo
from dynabatch.bench.suite import policy_lineup, select
from dynabatch.bench.workload import synthetic

PROFILE = "llama-3-70b-fp8-h200"
ENGINE = {"max_num_tokens": 8192, "tokens_per_block": 32}


def _run(policy: str, **engine):
    wl = synthetic(
        128, 1000.0, prompt_median=16384, output_median=512, prompt_sigma=0,
        output_sigma=0, max_len=16384, max_new_tokens=512,
    )  # fmt: skip
    (spec,) = select(policy_lineup(PROFILE), [policy])
    return run_closed_loop(
        wl, PROFILE, spec, concurrency=32, slo=Slo(), engine_kw={**ENGINE, **engine}
    ).row


@pytest.fixture(scope="module")
def gne():
    return _run("static-32/gne")


def test_guaranteed_no_evict_matches_the_published_run(gne):
    assert gne["completed"] == 128
    assert gne["output_tok_s"] == pytest.approx(161.0, rel=0.10)
    assert gne["tpot_p99_s"] == pytest.approx(0.122, rel=0.10)
    assert gne["e2e_p99_s"] == pytest.approx(150.0, rel=0.10)


def test_ported_max_utilization_admits_whole_prompts_so_it_ties(gne):
    maxu = _run("static-32/maxu")
    assert maxu["paused"] == 0 and maxu["output_tok_s"] == pytest.approx(gne["output_tok_s"])


def test_blocks_chunk_by_chunk_would_thrash(gne):
    what_if = _run("static-32/maxu", context_blocks="chunk")
    assert what_if["paused"] > 100
    assert what_if["output_tok_s"] < 0.75 * gne["output_tok_s"]  # the issue: -40.6 %
    assert what_if["tpot_p99_s"] > 2 * gne["tpot_p99_s"]

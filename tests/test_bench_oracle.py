"""The clairvoyant oracle: never pauses, yet holds more than reserve-max-tokens does."""

import pytest
from dynabatch.bench.metrics import Slo
from dynabatch.bench.runner import GNE, MAXU, PolicySpec, run_policy
from dynabatch.bench.workload import synthetic

PROFILE = "llama-2-13b-a100-40gb"
KV = {"max_tokens_in_paged_kv_cache": 6144}  # a small cache: overflow is easy


@pytest.fixture(scope="module")
def workload():
    # A burst much faster than the engine: the queue is always full.
    return synthetic(
        120,
        200.0,
        prompt_median=400,
        output_median=150,
        output_sigma=0.8,
        max_len=2000,
        seed=7,
        max_new_tokens=1024,
    )


def run(wl, spec):
    return run_policy(wl, PROFILE, spec, slo=Slo(2.0, 0.1), engine_kw=KV).row


@pytest.mark.parametrize("seed", [7, 11])
def test_oracle_never_pauses_where_a_static_limit_does(seed):
    wl = synthetic(
        120,
        200.0,
        prompt_median=400,
        output_median=150,
        output_sigma=0.8,
        max_len=2000,
        seed=seed,
        max_new_tokens=1024,
    )
    oracle = run(wl, PolicySpec("oracle", "oracle", MAXU))
    greedy = run(wl, PolicySpec("static-64/maxu", "static", MAXU, (("static_batch_size", 64),)))
    assert greedy["paused"] > 0  # the workload does overflow the cache
    assert oracle["paused"] == 0 and oracle["recomputed_tokens"] == 0
    assert oracle["completed"] == len(wl)
    assert oracle["mean_kv_occupancy"] > 0.5


def test_oracle_beats_reserving_max_tokens(workload):
    oracle = run(workload, PolicySpec("oracle", "oracle", MAXU))
    gne = run(workload, PolicySpec("static-64/gne", "static", GNE, (("static_batch_size", 64),)))
    assert oracle["mean_batch"] > gne["mean_batch"]
    assert oracle["output_tok_s"] > gne["output_tok_s"]

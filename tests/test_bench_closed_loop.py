"""Closed-loop clients (`dynabatch bench --concurrency`) and `--engine-opt`."""

import json

import pytest
from dynabatch.bench.closed_loop import parse_engine_opts, run_closed_loop
from dynabatch.bench.metrics import Slo
from dynabatch.bench.suite import policy_lineup, select
from dynabatch.bench.workload import synthetic
from dynabatch.cli import main
from dynabatch.params import ConfigError

PROFILE = "llama-2-7b-a100-80gb"


def _spec(name):
    (spec,) = select(policy_lineup(PROFILE), [name])
    return spec


def test_concurrency_bounds_requests_in_flight_and_chains_arrivals():
    wl = synthetic(40, 1000.0, prompt_median=200, output_median=30, seed=1)
    res = run_closed_loop(wl, PROFILE, _spec("static-64/maxu"), concurrency=4, slo=Slo())
    recs = res.records
    assert len(recs) == 40 and all(r.completed for r in recs)
    assert sum(r.arrival == 0.0 for r in recs) == 4  # the first request of each client
    finishes = sorted(r.finish for r in recs)
    # every later request is sent the moment an earlier one finished
    assert all(any(abs(r.arrival - f) < 1e-12 for f in finishes) for r in recs[4:])
    for r in recs:  # never more than 4 outstanding
        assert sum(o.arrival <= r.arrival < o.finish for o in recs) <= 4


def test_engine_opts_are_typed_checked_and_reach_the_engine():
    kw = parse_engine_opts(["max_num_tokens=512", "enable_chunked_context=false"])
    assert kw == {"max_num_tokens": 512, "enable_chunked_context": False}
    assert parse_engine_opts(["max_tokens_in_paged_kv_cache=0"]) == {
        "max_tokens_in_paged_kv_cache": None
    }
    with pytest.raises(ConfigError, match="max_num_tokens"):
        parse_engine_opts(["max_num_tokens=-3"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_engine_opts(["bogus=1"])
    with pytest.raises(ConfigError, match="--profile"):
        parse_engine_opts(["sim_profile=llama-2-7b-h100"])
    assert parse_engine_opts(["sim_context_blocks=chunk", "sim_seed=3"]) == {
        "context_blocks": "chunk",
        "seed": 3,
    }
    wl = synthetic(
        6,
        1000.0,
        prompt_median=100,
        output_median=5,
        prompt_sigma=0,
        output_sigma=0,
        max_new_tokens=5,
    )
    small = run_closed_loop(
        wl,
        PROFILE,
        _spec("static-64/maxu"),
        concurrency=6,
        slo=Slo(),
        engine_kw=parse_engine_opts(["max_tokens_in_paged_kv_cache=256", "tokens_per_block=16"]),
    )
    big = run_closed_loop(wl, PROFILE, _spec("static-64/maxu"), concurrency=6, slo=Slo())
    # a 256-token cache holds two 100-token prompts at a time: requests wait for it
    assert small.row["ttft_p50_s"] > big.row["ttft_p50_s"]


def test_cli_closed_loop_run_prints_and_writes_rows(tmp_path, capsys):
    out = tmp_path / "rows.json"
    argv = [
        "bench", "--synthetic", "16:1000", "--prompt-median", "2048", "--output-median", "16",
        "--length-sigma", "0", "--max-len", "4096", "--max-new-tokens", "16",
        "--concurrency", "8", "--profile", PROFILE,
        "--policies", "static-64/gne,static-64/maxu",
        "--engine-opt", "max_tokens_in_paged_kv_cache=8192", "--engine-opt", "tokens_per_block=32",
        "--json", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["policy"] for r in rows] == ["static-64/gne", "static-64/maxu"]
    assert all(r["completed"] == 16 and r["workload"].endswith("closed-loop-8") for r in rows)
    assert "TPOT p99 ms" in capsys.readouterr().out
    assert main(argv[:-2] + ["--engine-opt", "nope=1"]) == 2


@pytest.mark.parametrize("max_wall_s", [600.0, 0.0])
def test_closed_loop_shuts_its_engine_down_on_success_and_on_error(monkeypatch, max_wall_s):
    # As the open-loop runner does: an adapter on the stand-in runs threads of its own,
    # and a run that fails (here: past its wall-clock bound at once) must not leak them.
    import dynabatch.bench.closed_loop as closed_loop

    shutdowns = []  # one entry per engine built: how often it was shut down
    real = closed_loop.make_engine

    def spy(*args, **kw):
        engine = real(*args, **kw)
        k, inner = len(shutdowns), engine.shutdown
        shutdowns.append(0)

        def shutdown():
            shutdowns[k] += 1
            inner()

        engine.shutdown = shutdown
        return engine

    monkeypatch.setattr(closed_loop, "make_engine", spy)
    wl = synthetic(8, 1000.0, prompt_median=100, output_median=10, seed=2)
    spec = _spec("static-8/maxu")
    if max_wall_s:
        res = run_closed_loop(wl, PROFILE, spec, concurrency=2, slo=Slo(), max_wall_s=max_wall_s)
        assert all(r.completed for r in res.records)
    else:
        with pytest.raises(RuntimeError, match="exceeded"):
            run_closed_loop(wl, PROFILE, spec, concurrency=2, slo=Slo(), max_wall_s=max_wall_s)
    assert shutdowns == [1]

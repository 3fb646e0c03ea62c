"""The admission experiments' throughput capacity: the completion rate while saturated,
measured on the very requests an experiment then runs at a fraction of it."""

import json

import pytest
from dynabatch.bench.admission_experiments import main, saturated_rate
from dynabatch.bench.metrics import RequestRecord

PROFILE = "llama-2-7b-a100-80gb"


def finished_at(times: list[float], completed: bool = True) -> list[RequestRecord]:
    return [RequestRecord(arrival=0.0, finish=t, completed=completed) for t in times]


def test_saturated_rate_counts_the_steady_middle_only():
    # a slow start (batch filling) and a slow drain, each under 10 % of the completions,
    # around 2 completions per second
    start = [1.0 * k for k in range(9)]
    steady = [10.0 + 0.5 * k for k in range(82)]
    drain = [steady[-1] + 5.0 * (k + 1) for k in range(9)]
    records = finished_at(start + steady + drain)
    assert saturated_rate(records) == pytest.approx(2.0)
    # completions over the whole run would say 1.2 req/s
    assert len(records) / drain[-1] < 1.3
    # requests that did not complete (refused, failed) are not service
    assert saturated_rate(records + finished_at([10.1] * 50, completed=False)) == (
        saturated_rate(records)
    )
    with pytest.raises(ValueError, match="too few"):
        saturated_rate(finished_at([1.0, 2.0]))


def test_load_as_utilisation_runs_at_a_fraction_of_the_measured_capacity(tmp_path, capsys):
    common = ["--seeds", "0", "--requests", "150", "--profile", PROFILE]
    assert main(["capacity", *common, "--json", str(tmp_path / "cap.json")]) == 0
    (measured,) = json.loads((tmp_path / "cap.json").read_text())["per_seed"]
    assert measured["throughput_rps"] > 1.0
    argv = ["sjf", *common, "--load", "0.8", "--capacity-def", "throughput"]
    assert main(argv + ["--json", str(tmp_path / "sjf.json")]) == 0
    result = json.loads((tmp_path / "sjf.json").read_text())
    assert result["capacity_def"] == "throughput"
    (row,) = result["per_seed"]
    assert row["capacity_rps"] == pytest.approx(measured["throughput_rps"])
    assert row["rate_rps"] == pytest.approx(0.8 * measured["throughput_rps"])
    assert row["engine_queue_wait_mean_fcfs_s"] >= 0.0
    # each TTFT splits at the admission: the parts add up to it, request by request
    for q in ("fcfs", "sjf"):
        parts = [row[f"{part}_mean_{q}_s"] for part in ("iteration", "gate", "engine")]
        assert sum(parts) == pytest.approx(row[f"ttft_mean_{q}_s"], rel=1e-9)
        assert min(parts) > 0.0


def test_true_length_sjf_orders_by_prompt_plus_the_real_output():
    from dynabatch.bench.admission_experiments import TrueLengthJobOrder
    from dynabatch.gate import AdmissionGate
    from dynabatch.types import GenerationRequest

    gate = AdmissionGate(order=TrueLengthJobOrder())
    # (prompt, max tokens, true output): jobs of 600, 150 (max tokens caps) and 300
    # tokens; the learned `sjf`, with nothing finished yet, would predict 600, 150, 880
    jobs = [(100, 500, 500), (100, 50, 900), (280, 600, 20)]
    for rid, (prompt, max_new, true_out) in enumerate(jobs):
        request = GenerationRequest(rid, [1] * prompt, max_new, true_output_len=true_out)
        assert gate.offer(request, None, 0.0) is None
    assert [gate.admit(0.0).request.request_id for _ in range(3)] == [1, 2, 0]


def test_bench_rows_tell_a_wait_in_the_engine_from_a_wait_at_the_gate():
    """A limit above what the KV cache holds passes the backlog on to the engine's own
    FCFS queue, where no admission order reaches it; a limit that fits keeps it in the
    gate."""
    from dynabatch.bench.metrics import Slo
    from dynabatch.bench.runner import MAXU, PolicySpec, run_policy
    from dynabatch.bench.workload import synthetic

    wl = synthetic(120, 6.0, prompt_median=1500, output_median=300, seed=3, max_new_tokens=512)

    def static(limit: int) -> dict:
        spec = PolicySpec(f"static-{limit}", "static", MAXU, (("static_batch_size", limit),))
        return run_policy(wl, "llama-2-13b-a100-40gb", spec, slo=Slo()).row

    wide, narrow = static(256), static(4)
    print({k: (wide[k], narrow[k]) for k in ("gate_wait_mean_s", "engine_queue_wait_mean_s")})
    assert wide["gate_wait_mean_s"] == 0.0 and wide["engine_queue_wait_mean_s"] > 1.0
    assert narrow["engine_queue_wait_mean_s"] < 0.05 * narrow["gate_wait_mean_s"]
    # what held the gate: the narrow limit, most of the time; the wide one never
    assert narrow["gate_held_by_limit_frac"] > 0.5
    assert wide["gate_held_by_limit_frac"] == 0.0


def test_fairness_reports_where_the_light_tenants_ttft_goes(tmp_path):
    argv = ["fairness", "--seeds", "0", "--requests", "200", "--profile", PROFILE]
    argv += ["--load", "0.9", "--capacity-def", "throughput"]
    assert main(argv + ["--json", str(tmp_path / "fair.json")]) == 0
    (row,) = json.loads((tmp_path / "fair.json").read_text())["per_seed"]
    # a TTFT is never shorter than its engine part, so neither is its P99
    assert 0.0 < row["engine_floor_vs_alone"] <= row["fair_vs_alone"]
    for run in ("alone", "fcfs", "fair"):
        assert row[f"light_engine_p99_{run}_s"] <= row[f"light_ttft_p99_{run}_s"]
    assert row["light_gate_p99_fcfs_s"] > row["light_gate_p99_alone_s"]
    # a pass ends with the gate empty or held, so the slowest light requests' gate part
    # is time held by the limit or by pacing
    held = row["light_tail_held_by_limit_fair_s"] + row["light_tail_held_by_pacing_fair_s"]
    assert held == pytest.approx(row["light_tail_gate_fair_s"], abs=1e-9)


def test_max_num_tokens_builds_every_engine_of_the_experiment(tmp_path, monkeypatch):
    """`--max-num-tokens N` reaches the simulated engine of every run, the capacity run
    included (the load is a fraction of what that very build serves)."""
    from dynabatch.bench import runner

    built: list[int] = []
    make_engine = runner.make_engine

    def spy(*args, **kw):
        engine = make_engine(*args, **kw)
        built.append(engine.max_num_tokens)
        return engine

    monkeypatch.setattr(runner, "make_engine", spy)
    argv = ["fairness", "--seeds", "0", "--requests", "60", "--profile", PROFILE]
    argv += ["--capacity-def", "throughput", "--max-num-tokens", "1024"]
    assert main(argv + ["--json", str(tmp_path / "fair.json")]) == 0
    # capacity, then alone, fcfs, fair
    assert built == [1024] * 4
    assert json.loads((tmp_path / "fair.json").read_text())["max_num_tokens"] == 1024
    built.clear()
    assert main(["capacity", "--seeds", "0", "--requests", "60", "--profile", PROFILE]) == 0
    assert built == [8192]  # the engine's default build


@pytest.mark.parametrize(
    "value, says",
    [("0", "int in [1, inf]"), ("32", "int >= tokens_per_block (64)")],
)
def test_a_bad_max_num_tokens_is_one_clear_error(value, says, capsys):
    with pytest.raises(SystemExit):
        main(["fairness", "--max-num-tokens", value])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--max-num-tokens" in err and says in err


def test_the_slo_capacity_is_tabled_for_the_default_build_only():
    # CAPACITY_BY_SEED was measured with max_num_tokens 8192: another build must say
    # what its load is a fraction of
    argv = ["fairness", "--seeds", "0", "--profile", PROFILE, "--max-num-tokens", "2048"]
    with pytest.raises(SystemExit, match="no measured SLO capacity for that build"):
        main(argv)


def test_a_gate_wait_splits_by_what_held_the_gate():
    from dynabatch.bench.runner import held_within

    # held by the limit from 1 to 3, by pacing from 3 to 4, free from 4, pacing from 6
    changes = [(1.0, "limit"), (3.0, "pacing"), (4.0, None), (6.0, "pacing")]
    assert held_within(changes, 2.0, 7.0) == {"limit": 1.0, "pacing": 2.0}
    assert held_within(changes, 0.0, 1.0) == {"limit": 0.0, "pacing": 0.0}
    assert held_within([], 0.0, 5.0) == {"limit": 0.0, "pacing": 0.0}


def test_the_slowest_light_requests_gate_wait_splits_by_cause(tmp_path):
    """Above capacity the light tenant's slowest requests wait in the gate; every second
    of that wait is accounted to what held the gate (the run's held_changes)."""
    argv = ["fairness", "--seeds", "0", "--requests", "200", "--profile", PROFILE]
    argv += ["--load", "1.3", "--capacity-def", "throughput"]
    assert main(argv + ["--json", str(tmp_path / "fair.json")]) == 0
    (row,) = json.loads((tmp_path / "fair.json").read_text())["per_seed"]
    assert row["light_tail_gate_fair_s"] > 0.1
    held = row["light_tail_held_by_limit_fair_s"] + row["light_tail_held_by_pacing_fair_s"]
    assert held == pytest.approx(row["light_tail_gate_fair_s"], rel=1e-9)


def test_tail_gate_causes_reads_the_slowest_requests_only():
    from dynabatch.bench.runner import RunResult, Timeline
    from dynabatch.bench.ttft_parts import tail_gate_causes

    def rec(arrival, queued, admitted, first, tenant="light"):
        return RequestRecord(
            arrival=arrival, queued=queued, admitted=admitted, first_token=first, tenant=tenant
        )

    # 99 quick light requests, one that waited 2 s in the gate (1 s limit, 1 s pacing),
    # and a heavy one that waited longer still (not the light tenant's)
    records = [rec(0.1 * k, 0.1 * k, 0.1 * k, 0.1 * k + 0.05) for k in range(99)]
    records.append(rec(20.0, 20.0, 22.0, 22.1))
    records.append(rec(19.0, 19.0, 30.0, 30.1, tenant="heavy"))
    held = [(19.0, "limit"), (21.0, "pacing"), (22.0, None)]
    run = RunResult(row={}, timeline=Timeline(), records=records, held_changes=held)
    assert tail_gate_causes(run, "light") == pytest.approx(
        {"gate": 2.0, "limit": 1.0, "pacing": 1.0}
    )

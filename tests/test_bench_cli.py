"""`dynabatch bench` / `dynabatch capacity` end to end on tiny workloads."""

import csv
import json
import random

import pytest
from dynabatch.cli import main

POLICIES = "trtllm_default,static-16/maxu,adaptive,oracle"


@pytest.fixture
def tiny_trace(tmp_path):
    rng = random.Random(3)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i in range(40):
        lines.append(
            f"2023-11-16 18:15:{10 + i // 4:02d}.{rng.randrange(10**7):07d},"
            f"{rng.randint(50, 1500)},{rng.randint(0, 300)}"
        )
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bench_writes_table_json_csv_png(tiny_trace, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "bench",
            "--trace",
            str(tiny_trace),
            "--profile",
            "llama-2-13b-a100-40gb",
            "--policies",
            POLICIES,
            "--rate-scale",
            "4",
            "--max-new-tokens",
            "512",
            "--json",
            str(out / "r.json"),
            "--csv",
            str(out / "r.csv"),
            "--plot",
            str(out / "png"),
            "--jobs",
            "2",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "adaptive" in captured.out and "TTFT p99" in captured.out
    assert "4/4" in captured.err  # the progress bar reached the end
    rows = json.loads((out / "r.json").read_text())["rows"]
    assert [r["policy"] for r in rows] == POLICIES.split(",")
    needed = {
        "policy",
        "profile",
        "workload",
        "output_tok_s",
        "requests_s",
        "goodput_rps",
        "sla_attainment",
        "mean_batch",
        "mean_kv_occupancy",
        "paused",
        "recomputed_tokens",
        "rejected",
        "vs_oracle",
        "capacity_policy",
    }
    needed |= {f"{m}_p{q}_s" for m in ("ttft", "tpot", "e2e") for q in (50, 90, 99)}
    for r in rows:
        assert needed <= set(r), needed - set(r)
        assert r["workload"] == "tiny@x4" and r["profile"] == "llama-2-13b-a100-40gb"
        assert r["completed"] == 40 and r["output_tok_s"] > 0
    # each row's throughput as a fraction of the oracle's, from the rows' own figures
    oracle_tok_s = next(r["output_tok_s"] for r in rows if r["policy"] == "oracle")
    for r in rows:
        assert r["vs_oracle"] == pytest.approx(r["output_tok_s"] / oracle_tok_s)
    assert any(r["vs_oracle"] < 0.99 for r in rows)  # the static limit lags the oracle
    with (out / "r.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["policy"] for r in csv_rows] == [r["policy"] for r in rows]
    assert float(csv_rows[0]["output_tok_s"]) == pytest.approx(rows[0]["output_tok_s"])
    pngs = sorted(p.name for p in (out / "png").iterdir())
    assert pngs == [
        "tiny_x4-llama-2-13b-a100-40gb-policies.png",
        "tiny_x4-llama-2-13b-a100-40gb-timeline.png",
    ]
    for p in (out / "png").iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_what_never_fits_and_reports_it(tiny_trace, tmp_path, capsys):
    # A 13B/A100-40GB cache holds ~16k tokens: asking 20k new tokens never fits.
    rc = main(
        [
            "bench",
            "--trace",
            str(tiny_trace),
            "--policies",
            "trtllm_default",
            "--max-new-tokens",
            "20000",
            "--json",
            str(tmp_path / "r.json"),
            "--jobs",
            "1",
        ]
    )
    assert rc == 0
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    assert row["rejected"] == 40 and row["completed"] == 0 and row["sla_attainment"] == 0


def test_bench_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nnot-a-time,1,1\n")
    assert main(["bench", "--trace", str(bad)]) == 2
    assert "bad TIMESTAMP" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, names",
    [
        (["bench", "--synthetic", "5:1", "--policies", "nope"], "unknown policy nope"),
        (["bench", "--synthetic", "5:1", "--policies", "static-0/maxu"], "static-0/maxu"),
        (["bench", "--synthetic", "5:1", "--policies", "static-8/fast"], "static-8/fast"),
        (["capacity", "--synthetic", "5:1", "--profile", "gpt-9"], "--profile"),
        (["capacity", "--synthetic", "5:1", "--seeds", "a-b"], "--seeds"),
        (["capacity", "--synthetic", "5:1", "--requests", "0"], "--requests"),
        (["capacity", "--synthetic", "5:1", "--slo-tpot", "0"], "--slo-tpot"),
        (["capacity", "--synthetic", "5:1", "--rel-tol", "-1"], "--rel-tol"),
        (["capacity", "--synthetic", "5:1", "--static-limits", "8,x"], "--static-limits"),
        (["capacity", "--synthetic", "5:1", "--static-limits", "0"], "--static-limits"),
        (["bench", "--synthetic", "5"], "--synthetic"),
        (["capacity", "--synthetic", "5:1", "--policy-param", "nope=1"], "'nope'"),
        (["capacity", "--synthetic", "5:1", "--policy-param", "prefill_pacing"], "KEY=VALUE"),
        (
            ["capacity", "--synthetic", "5:1", "--policy-param", "prefill_pacing=maybe"],
            "'prefill_pacing' = 'maybe': true or false",
        ),
        (
            ["capacity", "--synthetic", "5:1", "--policy-param", "kv_overflow_prob=2"],
            "'kv_overflow_prob' = '2': float in [1e-06, 0.5]",
        ),
        (
            ["capacity", "--synthetic", "5:1", "--policy-param", "static_batch_size=4"],
            "static_batch_size: set by the policy labels",
        ),
        (
            ["capacity", "--synthetic", "5:1", "--policies", "adaptive"]
            + ["--policy-param", "sla_window_alpha=3"],
            "sla_window_alpha: read by none of the selected policies",
        ),
    ],
)
def test_cli_mistakes_get_one_line_error(argv, names, capsys):
    assert main(argv + ["--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and names in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_any_static_limit_under_either_capacity_policy(capsys):
    from dynabatch.bench.runner import GNE, MAXU
    from dynabatch.bench.suite import parse_static, policy_lineup, select

    specs = select(policy_lineup("llama-2-13b-a100-40gb"), ["static-48/maxu", "static-384/gne"])
    assert [(s.name, s.capacity_policy, dict(s.params)["static_batch_size"]) for s in specs] == [
        ("static-48/maxu", MAXU, 48),
        ("static-384/gne", GNE, 384),
    ]
    assert specs[0].max_batch_size is None and specs[1].max_batch_size == 384
    assert parse_static("static-48") is None and parse_static("adaptive") is None
    rc = main(["bench", "--synthetic", "30:2", "--policies", "static-6/gne", "--jobs", "1"])
    assert rc == 0 and "static-6/gne" in capsys.readouterr().out


def test_dynamic_policies_run_on_the_largest_build_a_default_gets():
    # adaptive was capped at 256 in flight on an 80 GB GPU while vllm_default ran on a
    # 1024 build: every dynamic policy now runs on the largest build of the line-up
    from dynabatch.bench.suite import DYNAMIC, policy_lineup

    for profile, build in (("llama-3-8b-h100", 1024), ("llama-2-13b-a100-40gb", 256)):
        specs = {s.name: s for s in policy_lineup(profile)}
        assert specs["vllm_default"].max_batch_size == build
        assert {specs[name].max_batch_size for name in DYNAMIC} == {build}


def test_capacity_cli(tmp_path, capsys):
    rc = main(
        [
            "capacity",
            "--synthetic",
            "40:1",
            "--policies",
            "trtllm_default,oracle",
            "--requests",
            "40",
            "--seeds",
            "0-2",
            "--max-probes",
            "10",
            "--rel-tol",
            "0.1",
            "--start-rate",
            "2",
            "--json",
            str(tmp_path / "c.json"),
            "--jobs",
            "1",
        ]
    )
    assert rc == 0
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert [r["policy"] for r in rows] == ["trtllm_default", "oracle"]
    for r in rows:
        assert r["seeds"] == [0, 1, 2] and len(r["capacity_by_seed"]) == 3
        assert r["capacity_rps"] == sorted(r["capacity_by_seed"])[1]  # the median
        assert r["capacity_min_rps"] == min(r["capacity_by_seed"]) > 0
        assert r["capacity_max_rps"] == max(r["capacity_by_seed"])
        assert [len(log) for log in r["probe_logs"]] and r["probes"] <= 3 * 10
        assert r["requests_per_probe"] == 40
    assert rows[0]["vs_trtllm_default"] == pytest.approx(1.0)
    assert rows[0]["wtl_trtllm_default"] == "0/3/0"
    assert rows[0]["best_static"] == "trtllm_default"
    assert "median req/s" in capsys.readouterr().out


def spy_controllers(monkeypatch):
    """(policy, params) of every controller the benchmark's runs build in this process."""
    from dynabatch.bench import runner

    built, real = [], runner.make_policy_controller

    def spy(spec, params, **kw):
        built.append((spec.policy, dict(params)))
        return real(spec, params, **kw)

    monkeypatch.setattr(runner, "make_policy_controller", spy)
    return built


def test_capacity_policy_param_reaches_the_policies_that_read_it(monkeypatch, capsys):
    built = spy_controllers(monkeypatch)
    argv = ["capacity", "--synthetic", "20:1", "--requests", "20", "--seeds", "0"]
    argv += ["--max-probes", "2", "--rel-tol", "0.5", "--jobs", "1"]
    argv += ["--policies", "adaptive,paper_sla,static-16/maxu"]
    rc = main(argv + ["--policy-param", "prefill_pacing=false"])
    rc2 = main(argv + ["--policy-param", "tpot_sla_tolerance_ms=2.5"])
    assert rc == rc2 == 0
    first = [(pol, p) for pol, p in built if "prefill_pacing" in p]
    assert first and all(pol == "adaptive" and p["prefill_pacing"] is False for pol, p in first)
    eps = [p["tpot_sla_tolerance_ms"] for pol, p in built if "tpot_sla_tolerance_ms" in p]
    assert eps and set(eps) == {2.5}
    assert {pol for pol, p in built if "tpot_sla_tolerance_ms" in p} == {"paper_sla"}
    # every policy still ran, and the others with their defaults
    assert {pol for pol, _ in built} == {"adaptive", "paper_sla", "static"}
    assert not any("prefill_pacing" in p for pol, p in built if pol != "adaptive")

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
    with pytest.raises(ValueError, match="unknown policy"):
        main(["bench", "--synthetic", "5:1", "--policies", "nope", "--jobs", "1"])


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
            "--max-probes",
            "4",
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
        assert r["capacity_rps"] > 0 and r["probes"] <= 4
        assert len(r["probe_log"]) == r["probes"]
    assert rows[0]["vs_trtllm_default"] == pytest.approx(1.0)
    assert "capacity req/s" in capsys.readouterr().out

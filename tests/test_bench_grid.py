"""`dynabatch grid --slice ci`: the CI-sized slice of the capacity grid end to end."""

import json

import pytest
from dynabatch.bench.grid_cells import WORKLOADS, slo_level, tight_tpot_s
from dynabatch.cli import main


def test_ci_slice_writes_cells_rows_and_figures(tmp_path, capsys):
    out = tmp_path / "grid"
    assert (
        main(["grid", "--slice", "ci", "--jobs", "2", "--max-probes", "6", "--out", str(out)]) == 0
    )
    doc = json.loads((out / "grid.json").read_text())
    rows, cells = doc["rows"], doc["meta"]["cells"]
    assert {(c["slo_level"], c["slo_tpot_s"]) for c in cells} == {
        ("interactive", 0.03),
        ("tight", tight_tpot_s("llama-3-8b-h100")),
    }
    sweep = [f"static-{n}/{cap}" for cap in ("gne", "maxu") for n in (8, 64)]
    for cell in cells:
        mine = [r for r in rows if r["slo_level"] == cell["slo_level"]]
        assert sorted(r["policy"] for r in mine) == sorted(
            ["adaptive", "paper", "paper_sla", "sglang_ratio", "trtllm_tuner"]
            + ["trtllm_default", "vllm_default", *sweep]
        )
        statics = [r for r in mine if r["static"]]
        best = max(statics, key=lambda r: r["capacity_rps"])
        assert cell["best_static"] == best["policy"]
        for b in ("trtllm_default", "vllm_default", "trtllm_tuner", "sglang_ratio", "paper"):
            assert f"vs_{b}" in cell and f"wtl_{b}" in cell
        ours = next(r for r in mine if r["policy"] == "adaptive")
        assert ours["seeds"] == [0, 1] and ours["requests_per_probe"] == 80
        assert cell["adaptive_rps"] == pytest.approx(sum(ours["capacity_by_seed"]) / 2)
        assert cell["vs_best_static"] == pytest.approx(ours["capacity_rps"] / best["capacity_rps"])
        assert sum(int(v) for v in cell["wtl_best_static"].split("/")) == 2
        assert cell["adaptive_rps"] > 0
    assert (out / "grid.md").read_text().startswith("| profile | workload | SLO |")
    tables = (out / "grid-policies.md").read_text()
    assert tables.count("#### llama-3-8b-h100, short-long") == 2 and "| `adaptive` |" in tables
    for png in ("capacity-vs-tpot-llama-3-8b-h100.png", "win-loss-map.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the sweep's higher limits reuse the probes of the lower ones where those never bound
    assert doc["meta"]["cpu_s"] > 0 and doc["meta"]["runs"] < doc["meta"]["probes"]

    # --rebuild: a later file's row replaces the earlier one, comparisons are made again
    again = json.loads((out / "grid.json").read_text())
    ours = next(r for r in again["rows"] if r["policy"] == "adaptive")
    ours["capacity_by_seed"] = [2 * c for c in ours["capacity_by_seed"]]
    for k in ("capacity_rps", "capacity_min_rps", "capacity_max_rps"):
        ours[k] *= 2
    again["rows"] = [ours]
    (tmp_path / "later.json").write_text(json.dumps(again))
    rebuilt = tmp_path / "rebuilt"
    sources = f"{out / 'grid.json'},{tmp_path / 'later.json'}"
    assert main(["grid", "--rebuild", sources, "--out", str(rebuilt)]) == 0
    new_cells = json.loads((rebuilt / "grid.json").read_text())["meta"]["cells"]
    old = next(c for c in cells if c["slo_level"] == ours["slo_level"])
    new = next(c for c in new_cells if c["slo_level"] == ours["slo_level"])
    assert new["adaptive_rps"] == pytest.approx(2 * old["adaptive_rps"])
    assert new["vs_trtllm_default"] == pytest.approx(2 * old["vs_trtllm_default"])
    assert len(new_cells) == len(cells)


@pytest.mark.parametrize(
    "extra, names",
    [
        (["--workloads", "nope"], "--workloads"),
        (["--profiles", "gpt-9"], "--profiles"),
        (["--slo-levels", "loose"], "--slo-levels"),
        (["--policies", "static-x/maxu"], "unknown policy"),
        (["--seeds", "1-a"], "--seeds"),
        (["--static-limits", "8,x"], "--static-limits"),
        (["--rebuild", "no-such.json"], "--rebuild"),
        (["--policy-param", "prefill_pacing=2"], "'prefill_pacing' = '2'"),
        (["--policy-param", "ttft_sla_s=1"], "ttft_sla_s: set by the run's TTFT SLO"),
    ],
)
def test_grid_mistakes_get_one_line_error(extra, names, tmp_path, capsys):
    assert main(["grid", "--slice", "ci", "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and names in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())  # nothing ran


def test_workloads_and_slo_levels_are_what_they_say():
    conv = WORKLOADS["conv"].lengths()
    assert len(conv) > 1000
    assert WORKLOADS["bursty"].arrival == "gamma" and WORKLOADS["bursty"].cv == 3.0
    long = WORKLOADS["long-prompt"].lengths()
    mean_prompt = sum(i.prompt_len for i in long.items) / len(long)
    assert mean_prompt > 2500
    mix = WORKLOADS["short-long"].lengths()
    assert sum(1 for i in mix.items if i.prompt_len > 1024) == pytest.approx(
        0.2 * len(mix), rel=0.1
    )
    assert slo_level("server", "llama-2-70b-tp4-h100").tpot_s == 0.2
    assert slo_level("interactive", "llama-2-13b-a100-40gb").ttft_s == 0.5
    assert slo_level("tight", "llama-3-8b-h100").tpot_s == 0.012


def test_grid_policy_param_reaches_adaptive(tmp_path, monkeypatch, capsys):
    from test_bench_cli import spy_controllers

    built = spy_controllers(monkeypatch)
    argv = ["grid", "--slice", "ci", "--policies", "adaptive,static-8/maxu", "--seeds", "0"]
    argv += ["--requests", "20", "--max-probes", "2", "--jobs", "1", "--out", str(tmp_path)]
    assert main(argv + ["--policy-param", "prefill_pacing=false"]) == 0
    pacing = {p.get("prefill_pacing") for pol, p in built if pol == "adaptive"}
    assert pacing == {False}
    assert not any("prefill_pacing" in p for pol, p in built if pol != "adaptive")
    meta = json.loads((tmp_path / "grid.json").read_text())["meta"]
    assert meta["slice"]["policy_params"] == [["prefill_pacing", False]]

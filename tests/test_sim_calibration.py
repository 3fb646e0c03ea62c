"""The profiles against every published figure (docs/SIMULATOR.md), and the CLI around them."""

import json

import pytest
from dynabatch.cli import main
from dynabatch.engines.simulated.calibration import (
    IFB_FIGURES,
    TOLERANCE,
    calibration_rows,
    fit_profile,
    ifb_rows,
)
from dynabatch.engines.simulated.latency import LatencyModel
from dynabatch.engines.simulated.profiles import PROFILES, get_profile

REQUIRED = [
    "llama-2-7b-a100-80gb",
    "llama-2-7b-h100",
    "llama-3-8b-a100-80gb",
    "llama-3-8b-h100",
    "llama-2-13b-a100-40gb",
    "llama-2-70b-tp4-a100-80gb",
    "llama-2-70b-tp4-h100",
    "zero-latency",
]


def test_required_profiles_exist_and_cite_a_source():
    for name in REQUIRED:
        assert PROFILES[name].source, name


def test_tolerance_is_ten_percent():
    assert TOLERANCE == 0.10


@pytest.mark.parametrize(
    "row", calibration_rows(with_ifb=False), ids=lambda r: f"{r.profile}:{r.figure}"
)
def test_every_published_step_figure_within_tolerance(row):
    assert abs(row.rel_error) <= TOLERANCE, (row.predicted, row.published)


@pytest.mark.slow  # replays the published runs (30,000 requests and more): ~1 min in all
@pytest.mark.parametrize(
    "fig", IFB_FIGURES, ids=lambda f: f"{f.profile}:{f.input_len}/{f.output_len}"
)
def test_every_in_flight_batching_figure_within_tolerance(fig):
    (row,) = ifb_rows((fig,))
    assert abs(row.rel_error) <= TOLERANCE, (row.predicted, row.published)


def test_calibration_covers_all_published_figures_and_static_batch():
    rows = calibration_rows(with_ifb=False)
    n_published = sum(len(p.published_ms) for p in PROFILES.values())
    assert n_published == 25  # 5 profiles x 5 token counts (docs/SIMULATOR.md)
    assert sum("static batch" in r.figure for r in rows) == 1
    assert len(rows) == n_published + 2
    assert len(IFB_FIGURES) == 10  # Llama-2-7B TP1 and Llama-2-70B TP4, 5 length pairs each


def test_fit_reproduces_vidur_within_seven_percent():
    prof = fit_profile(get_profile("llama-2-70b-tp4-h100"))
    lat = LatencyModel(prof)
    for tokens, ms in prof.published_ms:
        assert abs(lat.linear_s(tokens) * 1e3 / ms - 1) < 0.07


def test_memory_constrained_profile_holds_few_tokens():
    small = get_profile("llama-2-13b-a100-40gb").kv_blocks(64) * 64
    big = get_profile("llama-2-7b-a100-80gb").kv_blocks(64) * 64
    assert 10_000 < small < 25_000 < big


def test_latency_grows_with_tokens_and_context():
    lat = LatencyModel(get_profile("llama-2-7b-a100-80gb"))
    assert lat.step_s(1) < lat.step_s(512) < lat.step_s(4096)
    assert lat.step_s(8, 1000) < lat.step_s(8, 100_000)
    assert LatencyModel(get_profile("zero-latency")).step_s(4096, 1e6, 1e9) == 0.0


def test_calibrate_cli_writes_json_and_table(tmp_path, capsys):
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--no-ifb", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["rows"] and all(r["ok"] for r in data["rows"])
    assert "llama-2-70b-tp4-h100" in capsys.readouterr().out


def test_profiles_cli_lists_capacity(capsys):
    assert main(["profiles"]) == 0
    text = capsys.readouterr().out
    blocks = get_profile("llama-2-13b-a100-40gb").kv_blocks(64)
    assert all(name in text for name in REQUIRED) and f"{blocks * 64}" in text

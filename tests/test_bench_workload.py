"""Trace parsing (Azure CSV), rescaling/filters, malformed input, synthetic arrivals."""

from pathlib import Path

import numpy as np
import pytest
from dynabatch.bench.workload import WorkloadError, load_trace, resample, synthetic

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROWS = (
    "2023-11-16 18:15:46.6805900,374,44\n"
    "2023-11-16 18:15:50.9951690,396,109\n"
    "2023-11-16 18:15:51.2224670,879,0\n"
    "2023-11-16 18:15:48.0000000,91,16\n"
)  # out of order on purpose


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_parses_azure_format_sorted_relative_times(tmp_path):
    wl = load_trace(write(tmp_path, HEADER + ROWS))
    assert [it.prompt_len for it in wl.items] == [374, 91, 396, 879]
    assert wl.items[0].arrival_s == 0.0
    assert wl.items[1].arrival_s == pytest.approx(1.31941, abs=1e-5)
    assert wl.items[3].arrival_s == pytest.approx(4.541877, abs=1e-6)
    assert wl.items[3].true_output_len == 1  # 0 generated tokens is read as 1
    assert wl.name == "t"


def test_rate_scale_first_n_window_and_cap(tmp_path):
    path = write(tmp_path, HEADER + ROWS)
    wl = load_trace(path, rate_scale=2.0, first_n=3, max_new_tokens=50)
    assert len(wl) == 3
    assert wl.items[2].arrival_s == pytest.approx(4.3145790 / 2, abs=1e-6)
    assert wl.name.endswith("@x2")
    reqs = wl.requests()
    assert [r.max_new_tokens for r in reqs] == [50, 50, 50]
    assert reqs[2].true_output_len == 109  # the hidden length is kept; the cap ends it
    assert wl.items[2].output_len(50) == 50
    assert reqs[1].prompt_len == 91 and len(list(reqs[1].prompt_ids)) == 91
    assert [r.request_id for r in reqs] == [0, 1, 2]
    assert len(load_trace(path, window_s=2.0)) == 2


def test_bundled_traces_load_by_name():
    code = load_trace("code", first_n=500)
    assert len(code) == 500 and code.items[-1].arrival_s > 0
    conv = load_trace("conv")
    assert len(conv) == 19_366  # the whole Azure conversation trace ships with the package


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty file"),
        ("time,ctx,gen\n1,2,3\n", "lacks column"),
        (HEADER, "no requests"),
        (HEADER + "2023-11-16 18:15:46.68,374\n", "expected 3 fields"),
        (HEADER + "yesterday,374,44\n", "bad TIMESTAMP"),
        (HEADER + "2023-11-16 18:15:46.68,abc,44\n", "ContextTokens must be an integer"),
        (HEADER + "2023-11-16 18:15:46.68,0,44\n", "ContextTokens must be >= 1"),
        (HEADER + "2023-11-16 18:15:46.68,10,-4\n", "GeneratedTokens must be >= 0"),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path, text, match):
    with pytest.raises(WorkloadError, match=match):
        load_trace(write(tmp_path, text))


def test_error_names_the_line(tmp_path):
    with pytest.raises(WorkloadError, match=r"t.csv:3:"):
        load_trace(write(tmp_path, HEADER + ROWS[:36] + "2023-11-16 18:15:47,x,1\n"))


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(WorkloadError, match="not found"):
        load_trace(tmp_path / "nope.csv")
    path = write(tmp_path, HEADER + ROWS)
    for kw in ({"rate_scale": 0}, {"first_n": 0}, {"max_new_tokens": 0}):
        with pytest.raises(WorkloadError):
            load_trace(path, **kw)
    with pytest.raises(WorkloadError, match="no requests after filtering"):
        load_trace(path, window_s=-1.0)


def test_synthetic_poisson_and_gamma_rates():
    wl = synthetic(4000, 10.0, seed=1)
    assert wl.rate == pytest.approx(10.0, rel=0.05)
    gaps = np.diff([it.arrival_s for it in wl.items])
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, abs=0.08)
    bursty = synthetic(4000, 10.0, arrival="gamma", cv=3.0, seed=1)
    g2 = np.diff([it.arrival_s for it in bursty.items])
    assert np.std(g2) / np.mean(g2) == pytest.approx(3.0, rel=0.15)
    assert bursty.rate == pytest.approx(10.0, rel=0.15)
    med = np.median([it.prompt_len for it in wl.items])
    assert med == pytest.approx(512, rel=0.1)
    with pytest.raises(WorkloadError):
        synthetic(10, 1.0, arrival="uniform")


def test_resample_keeps_length_pairs():
    base = synthetic(50, 1.0, seed=2)
    pairs = {(it.prompt_len, it.true_output_len) for it in base.items}
    wl = resample(base, 300, 20.0, seed=3)
    assert all((it.prompt_len, it.true_output_len) in pairs for it in wl.items)
    assert wl.rate == pytest.approx(20.0, rel=0.2)

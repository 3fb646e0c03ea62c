"""scripts/measure_step_latency.py on the CPU: the numpy path on a tiny shape."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "measure_step_latency.py"


def _load():
    spec = importlib.util.spec_from_file_location("measure_step_latency", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_grid_runs_on_cpu_and_names_the_device(tmp_path):
    mod = _load()
    out = tmp_path / "grid.json"
    argv = ["--backend", "numpy", "--shape", "tiny", "--decode", "1x16,4x32"]
    assert mod.main(argv + ["--prefill", "8,32", "--repeats", "2", "--out", str(out)]) == 0
    grid = json.loads(out.read_text())
    assert grid["device"] == "cpu (numpy float32)" and grid["backend"] == "numpy"
    points = [(r["kind"], r["batch"], r["new_tokens"], r["context"]) for r in grid["rows"]]
    assert points == [("decode", 1, 1, 16), ("decode", 4, 1, 32), ("prefill", 1, 8, 0), ("prefill", 1, 32, 0)]  # fmt: skip
    assert all(r["median_ms"] > 0 for r in grid["rows"]) and not grid["skipped_for_budget"]


def test_budget_stops_new_points_and_says_so(tmp_path):
    mod = _load()
    out = tmp_path / "grid.json"
    mod.main(["--backend", "numpy", "--shape", "tiny", "--budget-s", "0", "--out", str(out)])
    grid = json.loads(out.read_text())
    assert not grid["rows"] and len(grid["skipped_for_budget"]) == 19


def test_numpy_layer_uses_grouped_query_heads():
    mod = _load()
    dec = mod.NumpyDecoder(mod.SHAPES["tiny"])
    s = dec.s
    hd = s.hidden // s.heads
    x = np.random.default_rng(0).standard_normal((2, 1, s.hidden)).astype(np.float32)
    cache = np.zeros((2, s.kv_heads, 5, hd), np.float32)
    y = dec._layer(x, cache, cache)
    assert y.shape == x.shape and np.isfinite(y).all()
    assert s.heads // s.kv_heads == 2  # the tiny shape keeps the GQA grouping

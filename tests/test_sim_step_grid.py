"""`dynabatch calibrate --step-grid`: a GPU-measured step grid against a profile."""

from __future__ import annotations

import json

from dynabatch.cli import main
from dynabatch.engines.simulated.latency import LatencyModel
from dynabatch.engines.simulated.profiles import get_profile

PROFILE = "llama-3.1-8b-bf16-h200"
SHAPE = {"name": "llama-3.1-8b", "layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 8}


def _kernel_ms(kind: str, batch: int, new: int, context: int) -> float:
    """The profile's kernels alone, summed from its parts: no host overhead."""
    lat = LatencyModel(get_profile(PROFILE))
    n = batch * new
    if kind == "decode":
        return (lat.linear_s(n) + batch * context * lat.kv_s_per_token) * 1e3
    return (lat.linear_s(n) + n * n / 2 * lat.attn_s_per_unit) * 1e3


def _grid(tmp_path, scale=None, **overrides):
    points = [("decode", 1, 1, 1024), ("decode", 64, 1, 8192), ("prefill", 1, 2048, 0)]
    scale = scale or {}
    rows = [
        {"kind": k, "batch": b, "new_tokens": t, "context": c,
         "median_ms": _kernel_ms(k, b, t, c) * scale.get(i, 1.0)}
        for i, (k, b, t, c) in enumerate(points)
    ]  # fmt: skip
    rows.append({"kind": "decode", "batch": 512, "new_tokens": 1, "context": 8192,
                 "error": "OutOfMemoryError: CUDA out of memory"})  # fmt: skip
    grid = {"backend": "torch", "device": "NVIDIA H200", "torch": "2.11.0 (CUDA 13.0)",
            "shape": SHAPE, "rows": rows, **overrides}  # fmt: skip
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid))
    return str(path)


def test_grid_matching_the_profile_kernels_passes(tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert main(["calibrate", "--step-grid", _grid(tmp_path), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 3  # the point that ran out of memory is skipped
    assert all(abs(r["rel_error"]) < 1e-9 for r in rows)
    assert "decode step, batch 64, context 8192" in capsys.readouterr().out


def test_a_point_off_the_profile_fails_and_is_flagged(tmp_path, capsys):
    assert main(["calibrate", "--step-grid", _grid(tmp_path, scale={1: 1.25})]) == 1
    flagged = [ln for ln in capsys.readouterr().out.splitlines() if "OUT OF TOLERANCE" in ln]
    assert len(flagged) == 1 and "batch 64, context 8192" in flagged[0]


def test_cpu_grid_is_refused_naming_the_device(tmp_path, capsys):
    path = _grid(tmp_path, backend="numpy", device="cpu (numpy float32)")
    assert main(["calibrate", "--step-grid", path]) == 2
    out = capsys.readouterr().out
    assert "cpu (numpy float32)" in out and path in out and "Traceback" not in out


def test_shape_of_another_model_is_refused_naming_both(tmp_path, capsys):
    path = _grid(tmp_path)
    assert main(["calibrate", "--step-grid", path, "--profile", "llama-2-13b-a100-40gb"]) == 2
    out = capsys.readouterr().out
    assert "llama-3.1-8b" in out and "llama-2-13b-a100-40gb" in out


def test_missing_file_is_one_line(tmp_path, capsys):
    assert main(["calibrate", "--step-grid", str(tmp_path / "nope.json")]) == 2
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and "nope.json" in out

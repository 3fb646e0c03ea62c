"""scripts/probe: one grid probe per policy, with adaptive's TPOT spread early and late."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "probe"
CELL = ["--profile", "llama-3-8b-h100", "--workload", "conv", "--rate", "10"]


def probe(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *CELL, *args], capture_output=True, text=True, timeout=120
    )


def test_probe_reports_each_policy_and_adaptives_spread():
    run = probe("--requests", "600", "--policies", "adaptive,trtllm_default", "--spread")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if not line.startswith(" ")] == [
        "trtllm_default",
        "adaptive",
    ]
    assert all("P99 TTFT" in line and "meets 2 s / 100 ms" in line for line in lines[:2])
    assert lines[2].startswith("  k over the first 128 finished: ")


def test_probe_mistakes_get_one_line_errors():
    for args, names in (
        (["--param", "foo"], "--param 'foo'"),
        (["--param", "prefill_pacing=x"], "prefill_pacing"),
    ):
        run = probe("--requests", "50", "--policies", "adaptive", *args)
        assert run.returncode == 2 and names in run.stderr
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr

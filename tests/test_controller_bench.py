"""`dynabatch controller-bench` runs and reports a per-update cost for every policy."""

import re

from dynabatch.cli import main
from dynabatch.controller import POLICIES
from dynabatch.controller.commands import bench_policy, synthetic_samples


def test_controller_bench_command_prints_every_policy(capsys):
    assert main(["controller-bench", "--iterations", "200", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    for policy in POLICIES:
        row = re.search(rf"^{policy}\s+([0-9.]+)\s", out, re.M)
        assert row, f"no row for {policy}:\n{out}"
        assert float(row.group(1)) > 0


def test_default_policy_update_is_cheap():
    # The benchmark prints the real figure; CI is noisy, so the bound here is 10x loose.
    samples, finished = synthetic_samples(500, 64)
    median, mean, p99 = bench_policy("adaptive", samples, finished, repeats=5)
    assert 0 < median <= mean and median < 200e-6

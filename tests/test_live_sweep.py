"""perf_analyzer sweeps: a tiny real run against the bare streaming model; the CSV
export and the profile export are parsed into the sweep table."""

from __future__ import annotations

import csv
import json
import math

import pytest
from dynabatch.bench.workload import WorkItem, Workload
from dynabatch.live.models import BARE_STREAM_MODEL
from dynabatch.live.server import TritonServer, build_repository
from dynabatch.live.sweep import SweepConfig, input_data, model_input_names, run_sweep

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


def test_tiny_perf_analyzer_sweep_is_parsed(tmp_path):
    repo = build_repository(tmp_path / "repo", {"bare_stream": BARE_STREAM_MODEL})
    wl = Workload("w", (WorkItem(0, 8, 20), WorkItem(0, 30, 40)), max_new_tokens=64)
    with TritonServer(repo, log_path=tmp_path / "server.log") as server:
        path = tmp_path / "input.json"
        path.write_text(
            json.dumps(input_data(wl, model_input_names(server.grpc_url, "bare_stream")))
        )
        cfg = SweepConfig(
            url=server.grpc_url,
            model="bare_stream",
            load_range="1:2:1",
            measurement_ms=800,
            max_trials=3,
            metrics_url=server.metrics_url,
            timeout_s=90,
        )
        points = run_sweep(cfg, path, tmp_path / "out", label="bare")
    assert [p.load for p in points] == [1.0, 2.0]
    for p in points:
        assert p.requests > 0 and p.throughput_rps > 0
        # bare_stream sends one token per response: tokens/s from the profile export
        # and perf_analyzer's own response throughput measure the same thing
        assert p.output_tok_s == pytest.approx(p.response_rps, rel=0.25)
        # 20- and 40-token requests (requests that straddle a window edge make the
        # window's ratio drift, so only the bounds are firm)
        assert 16 <= p.response_rps / p.throughput_rps <= 50
        assert not math.isnan(p.tpot_p99_ms) and 0 < p.ttft_p50_ms <= p.ttft_p99_ms
    rows = list(csv.DictReader(open(tmp_path / "out" / "bare_sweep.csv")))
    assert len(rows) == 2 and rows[0]["config"] == "bare"
    assert (tmp_path / "out" / "bare_pa.csv").exists() and (
        tmp_path / "out" / "bare_metrics.csv"
    ).exists()

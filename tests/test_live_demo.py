"""The demo machinery end to end on a tiny load: a real tritonserver with the static
and dynamic models, gRPC streaming replay, /metrics scraping, table and figures."""

from __future__ import annotations

import json

import pytest
from dynabatch.bench.metrics import Slo
from dynabatch.live.demo import CONFIGS, DemoConfig, format_table, run_demo

pytestmark = [pytest.mark.server, pytest.mark.timeout(200)]


def test_demo_runs_and_writes_table_and_figures(tmp_path):
    cfg = DemoConfig(
        out_dir=tmp_path,
        requests=8,
        loads=(3.0,),
        time_scale=0.1,
        max_new_tokens=256,
        slo=Slo(2.0, 0.1),
        configs=(CONFIGS[0], CONFIGS[2]),
        drain_timeout_s=40,
    )
    lines: list[str] = []
    result = run_demo(cfg, log=lines.append)

    live = {r["config"]: r for r in result["live"]}
    assert set(live) == {"static-gne", "dynamic"}
    workload_tokens = None
    for _label, row in live.items():
        assert row["errors"] == 0, row["first_error"]
        assert row["completed"] == row["requests"] == 8
        # Every request stopped at its hidden true length (capped at max tokens): the
        # true_output_len parameter reached the simulated engine.
        workload_tokens = workload_tokens or row["output_tokens"]
        assert row["output_tokens"] == workload_tokens
        assert row["output_tok_s"] > 0 and row["tpot_p99_s"] > 0 and row["mean_batch"] >= 1
    virtual = {r["config"]: r for r in result["virtual"]}
    assert virtual["dynamic"]["output_tokens"] == workload_tokens

    text = "\n".join(lines)
    assert "static-gne" in text and "dynamic" in text and "live/virtual" in text
    assert format_table(result["live"], result["virtual"], cfg) in text
    for fig in result["figures"]:
        data = open(fig, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    # the text section: each prompt answered through the ensemble, streamed and not
    assert [a["prompt"] for a in result["text"]] == list(cfg.text_prompts)
    for a in result["text"]:
        assert a["text"] and a["pieces"] >= 2 and f"  > {a['prompt']}" in text
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["live"]) == 2 and len(saved["virtual"]) == 2
    # /metrics was scraped while the runs went on: KV occupancy samples exist
    metrics = (tmp_path / "metrics_dynamic_3rps.csv").read_text()
    assert "nv_trt_llm_kv_cache_block_metrics" in metrics and "dynabatch_batch_limit" in metrics

"""The soak run in short (60 s; `scripts/soak` runs >= 600 s): nothing lost, nothing
left at idle, memory flat (docs/RELIABILITY.md, "Soak")."""

from __future__ import annotations

import pytest
from dynabatch.live.models import simulated_params
from dynabatch.live.soak import MODEL, SoakConfig, format_report, run_soak

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_soak_60s_loses_nothing_idles_at_zero_and_keeps_rss_flat(triton):
    cfg = SoakConfig(duration_s=60, window_s=15, max_batch_size=16, seed=7)
    triton.load(
        MODEL,
        **simulated_params(cfg.sim_profile, cfg.sim_time_scale),
        max_batch_size=str(cfg.max_batch_size),
    )
    report = run_soak(triton, cfg, log=print)
    print(format_report(report))
    assert len(report.windows) >= 3
    # every accepted request got exactly one final response; every bad one one error
    assert report.server_lost == 0
    assert report.client_lost == [] and report.client_wrong == []
    assert report.unattributed_errors == []
    bad = sum(w.bad for w in report.windows)
    assert bad > 0 and sum(w.cancelled for w in report.windows) > 0
    assert report.submitted == report.accepted + report.rejected
    assert report.rejected == bad
    # each idle moment: no KV block held, no request active or queued
    for w in report.windows:
        assert (w.idle_kv_used_blocks, w.idle_active_requests, w.idle_queue) == (0, 0, 0), w
    assert report.rss_growth_pct is not None and report.rss_growth_pct < 5.0

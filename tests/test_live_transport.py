"""The transport benchmark's machinery: both models in one server, same perf_analyzer
load, tokens/s of each from the profile export."""

from __future__ import annotations

import pytest
from dynabatch.live.transport import run_transport

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]


def test_transport_measures_both_models(tmp_path):
    res = run_transport(
        tmp_path, concurrency=4, prompt_len=8, output_len=32, measurement_ms=700, rounds=1
    )
    assert res.ours_tok_s > 100 and res.bare_tok_s > 100
    # The bare model sends exactly one token per response.
    assert res.bare_tok_s == pytest.approx(res.bare_resp_s, rel=0.3)
    # Ours never sends fewer tokens than responses (a response may carry several).
    assert res.ours_tok_s >= 0.7 * res.ours_resp_s
    assert (tmp_path / "dynabatch_r0_pa.csv").exists() and (
        tmp_path / "bare_stream_r0_pa.csv"
    ).exists()

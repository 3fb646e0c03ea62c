"""Metrics on hand-made timelines: percentiles, TPOT, goodput, SLA attainment."""

import math

import pytest
from dynabatch.bench.metrics import RequestRecord, Slo, meets_slo_percentile, percentiles, summarize

SLO = Slo(ttft_s=1.0, tpot_s=0.1)


def rec(arrival, first, finish, out, completed=True, rejected=False):
    return RequestRecord(
        arrival=arrival,
        first_token=first,
        finish=finish,
        prompt_tokens=10,
        output_tokens=out,
        completed=completed,
        rejected=rejected,
    )


def test_per_request_latencies():
    r = rec(1.0, 1.5, 3.5, 11)
    assert r.ttft == pytest.approx(0.5)
    assert r.tpot == pytest.approx(0.2)  # 2 s over 10 inter-token gaps
    assert r.e2e == pytest.approx(2.5)
    assert rec(0, 0.2, 0.2, 1).tpot is None


def test_percentiles_linear_interpolation():
    p = percentiles([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert p[50] == pytest.approx(5.5)
    assert p[90] == pytest.approx(9.1)
    assert p[99] == pytest.approx(9.91)
    assert all(math.isnan(v) for v in percentiles([]).values())


def test_summary_goodput_and_attainment():
    records = [
        rec(0.0, 0.5, 1.5, 11),  # ttft .5, tpot .1  -> meets
        rec(0.0, 1.5, 2.5, 11),  # ttft 1.5          -> misses (TTFT)
        rec(1.0, 1.2, 4.2, 11),  # tpot .3           -> misses (TPOT)
        rec(2.0, 2.1, 2.1, 1),  # one token, no TPOT -> meets
        RequestRecord(arrival=3.0, finish=3.0, rejected=True),  # rejected -> misses
        rec(3.0, 3.5, 5.0, 4, completed=False),  # failed -> misses
    ]
    row = summarize(records, None, SLO)
    assert row["duration_s"] == pytest.approx(5.0)  # first arrival 0 -> last finish 5
    assert row["completed"] == 4 and row["rejected"] == 1 and row["failed"] == 1
    assert row["output_tokens"] == 34  # completed requests only
    assert row["output_tok_s"] == pytest.approx(34 / 5.0)
    assert row["requests_s"] == pytest.approx(4 / 5.0)
    assert row["goodput_rps"] == pytest.approx(2 / 5.0)
    assert row["sla_attainment"] == pytest.approx(2 / 6)
    assert row["ttft_p50_s"] == pytest.approx(0.35)  # median of .5, 1.5, .2, .1
    assert row["tpot_p99_s"] == pytest.approx(0.1 + 0.98 * 0.2)  # of .1, .1, .3
    assert row["e2e_p50_s"] == pytest.approx(2.0)  # median of 1.5, 2.5, 3.2, .1


def test_explicit_duration_and_capacity_criterion():
    good = [rec(i * 0.1, i * 0.1 + 0.2, i * 0.1 + 1.1, 11) for i in range(100)]
    row = summarize(good, 20.0, SLO)
    assert row["output_tok_s"] == pytest.approx(1100 / 20.0)
    assert meets_slo_percentile(row, SLO)
    slow = good[:98] + [rec(0, 5.0, 6.0, 11), rec(0, 5.0, 6.0, 11)]  # 2% miss TTFT
    assert not meets_slo_percentile(summarize(slow, None, SLO), SLO)
    assert meets_slo_percentile(summarize(slow, None, SLO), Slo(10.0, 0.1))
    failed = good + [rec(0, None, 1.0, 0, completed=False)]
    assert not meets_slo_percentile(summarize(failed, None, SLO), SLO)

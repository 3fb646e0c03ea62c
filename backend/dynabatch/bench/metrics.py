"""Per-request latency metrics from timings, independent of any engine or clock.

The virtual-clock benchmark and the live (Triton) benchmark both build RequestRecords
and call `summarize`, so their numbers mean the same thing:

- TTFT = first_token - arrival (queue wait included);
- TPOT = (finish - first_token) / (output_tokens - 1), per request with >= 2 tokens;
- E2E  = finish - arrival;
- a request meets the SLO when it completed, TTFT <= slo.ttft_s and TPOT <= slo.tpot_s
  (a one-token request has no TPOT and meets that half);
- SLA attainment = requests meeting the SLO / all requests (rejected and failed ones
  count as misses); goodput = requests meeting the SLO / duration;
- percentiles use linear interpolation (numpy's default) over completed requests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Slo:
    ttft_s: float = 2.0
    tpot_s: float = 0.1


@dataclass
class RequestRecord:
    arrival: float
    first_token: float | None = None
    finish: float | None = None
    # TTFT breakdown: when the serving core took it into the gate (the end of the engine
    # iteration running when it arrived) and when the gate passed it to the engine
    queued: float | None = None
    admitted: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    completed: bool = False  # finished normally (length/EOS/end_id), not rejected/failed
    rejected: bool = False
    tenant: str = ""  # who sent it (per-tenant rows)

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.arrival

    @property
    def tpot(self) -> float | None:
        if self.first_token is None or self.finish is None or self.output_tokens < 2:
            return None
        return (self.finish - self.first_token) / (self.output_tokens - 1)

    @property
    def e2e(self) -> float | None:
        return None if self.finish is None else self.finish - self.arrival

    def meets(self, slo: Slo) -> bool:
        if not self.completed or self.ttft is None or self.ttft > slo.ttft_s:
            return False
        tpot = self.tpot
        return tpot is None or tpot <= slo.tpot_s


PERCENTILES = (50, 90, 99)


def percentiles(values: Sequence[float], qs: Sequence[int] = PERCENTILES) -> dict[int, float]:
    """{q: value}; NaN for an empty sample (so a table shows it, JSON writes null)."""
    if not len(values):
        return {q: math.nan for q in qs}
    arr = np.asarray(values, dtype=float)
    return {q: float(np.percentile(arr, q)) for q in qs}


def summarize(records: Sequence[RequestRecord], duration_s: float | None, slo: Slo) -> dict:
    """Throughput, latency percentiles, goodput and SLA attainment for one run.

    `duration_s` None = from the first arrival to the last finish (makespan).
    Times are in seconds; the returned latencies are too (keys end in _s).
    """
    done = [r for r in records if r.completed]
    if duration_s is None:
        ends = [r.finish for r in records if r.finish is not None]
        start = min((r.arrival for r in records), default=0.0)
        duration_s = (max(ends) - start) if ends else 0.0
    dur = duration_s if duration_s > 0 else math.nan
    met = sum(1 for r in records if r.meets(slo))
    out_tokens = sum(r.output_tokens for r in done)
    row: dict = {
        "requests": len(records),
        "completed": len(done),
        "rejected": sum(1 for r in records if r.rejected),
        "failed": sum(1 for r in records if not r.completed and not r.rejected),
        "duration_s": duration_s,
        "output_tokens": out_tokens,
        "output_tok_s": out_tokens / dur,
        "requests_s": len(done) / dur,
        "goodput_rps": met / dur,
        "sla_attainment": met / len(records) if records else math.nan,
        "slo_ttft_s": slo.ttft_s,
        "slo_tpot_s": slo.tpot_s,
    }
    for name, values in (
        ("ttft", [r.ttft for r in done]),
        ("tpot", [r.tpot for r in done]),
        ("e2e", [r.e2e for r in done]),
    ):
        clean = [v for v in values if v is not None]
        for q, v in percentiles(clean).items():
            row[f"{name}_p{q}_s"] = v
        row[f"{name}_mean_s"] = float(np.mean(clean)) if clean else math.nan
    return row


def meets_slo_percentile(row: dict, slo: Slo, q: int = 99) -> bool:
    """Capacity criterion: the P`q` TTFT and TPOT within the SLO and no request failed.

    Rejected requests (prompt + max tokens larger than the KV cache) do not count:
    they are rejected at any rate, so they say nothing about capacity. A run stopped
    once a miss was certain (`slo_missed_early`, slo_watch.py) fails."""
    if row.get("slo_missed_early"):
        return False
    ttft, tpot = row.get(f"ttft_p{q}_s", math.nan), row.get(f"tpot_p{q}_s", math.nan)
    if row.get("failed", 0) or not row.get("completed", 0):
        return False
    if math.isnan(ttft) or ttft > slo.ttft_s:
        return False
    return math.isnan(tpot) or tpot <= slo.tpot_s

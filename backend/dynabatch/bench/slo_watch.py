"""Stop a capacity probe as soon as its P99 SLO check can no longer pass.

A capacity probe only needs one bit: do P99 TTFT and P99 TPOT meet the SLO
(`metrics.meets_slo_percentile`)? Once enough requests are *known* to miss, the rest of
the run cannot change that bit, so the probe stops there. Failing probes are the
expensive ones (the queue grows, the run lasts longer), and about half of a search's
probes fail.

Why the bit is exact. P99 is numpy's linear interpolation over the n values of the
completed requests: with h = 0.99 (n - 1) it lies between the sorted values x[floor h]
and x[floor h + 1]. If at least n - floor(h) + 1 values exceed the SLO, both of those
do, and so does P99. n is at most the number of requests the run serves (rejected ones
are known before it starts); the count needed only grows with n, so using that upper
bound for both TTFT and TPOT (one-token requests have no TPOT) is conservative. If a
served request fails instead, the check fails anyway.

Known misses: a first token later than the TTFT SLO after arrival; a finished request
whose TPOT exceeds the TPOT SLO; a request still waiting for its first token longer
than the TTFT SLO (its first token comes at a later step, so its TTFT is larger).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .metrics import RequestRecord, Slo

# How often (passes of the serving loop) the waiting requests are scanned; the counts
# from first tokens and finishes are checked every pass.
_SCAN_EVERY = 64


def misses_needed(served: int, q: int = 99) -> int:
    """Values above the SLO that make the P`q` (linear interpolation) of `served`
    values exceed it for sure."""
    if served < 1:
        return 1
    return served - math.floor(q / 100 * (served - 1)) + 1


class SloMissWatch:
    def __init__(self, records: Sequence[RequestRecord], slo: Slo, served: int) -> None:
        self.records = records
        self.slo = slo
        self.needed = misses_needed(served)
        self.ttft_misses = 0  # first token later than the TTFT SLO
        self.tpot_misses = 0  # finished with a TPOT above the TPOT SLO
        self._oldest = 0  # records before this one all have their first token or finished
        self._passes = 0
        self.tripped = False

    def on_first_token(self, rec: RequestRecord) -> None:
        if rec.first_token - rec.arrival > self.slo.ttft_s:  # type: ignore[operator]
            self.ttft_misses += 1

    def on_finish(self, rec: RequestRecord) -> None:
        if rec.completed:
            tpot = rec.tpot
            if tpot is not None and tpot > self.slo.tpot_s:
                self.tpot_misses += 1

    def missed(self, now: float) -> bool:
        """True once P99 TTFT or P99 TPOT is certain to miss the SLO."""
        if self.ttft_misses >= self.needed or self.tpot_misses >= self.needed:
            self.tripped = True
            return True
        self._passes += 1
        if self._passes % _SCAN_EVERY:
            return False
        recs, j = self.records, self._oldest
        while j < len(recs) and (recs[j].first_token is not None or recs[j].finish is not None):
            j += 1
        self._oldest = j
        # Waiting since more than the TTFT SLO: its first token comes at a later step,
        # so first_token - arrival >= now - arrival > the SLO (arrivals are in order).
        waiting, ttft_s = 0, self.slo.ttft_s
        while j < len(recs) and now - recs[j].arrival > ttft_s:
            if recs[j].first_token is None and recs[j].finish is None:
                waiting += 1
            j += 1
        if self.ttft_misses + waiting >= self.needed:
            self.tripped = True
        return self.tripped

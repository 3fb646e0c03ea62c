"""Where a request's TTFT goes (docs/ADMISSION.md, "Where the TTFT goes"): its three
parts, and what held the slowest requests of a tenant in the gate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import RequestRecord
from .runner import RunResult, held_within

# The parts of a TTFT, in order (ttft_split)
TTFT_PARTS = ("iteration", "gate", "engine")


def ttft_split(records: Sequence[RequestRecord], tenant: str | None = None) -> dict[str, list]:
    """Each served request's TTFT in three parts: `iteration` (arrival -> taken into the
    gate: the engine iteration running when it arrived ends first), `gate` (held in the
    gate: by the in-flight limit, by prefill pacing, or behind requests the order puts
    first; the only part an admission order acts on) and `engine` (admission -> first
    token: the engine's own queue and the prefill, in a batch with the running requests'
    decode steps)."""
    served = [
        r
        for r in records
        if r.first_token is not None
        and r.queued is not None
        and r.admitted is not None
        and (tenant is None or r.tenant == tenant)
    ]
    return {
        "iteration": [r.queued - r.arrival for r in served],
        "gate": [r.admitted - r.queued for r in served],
        "engine": [r.first_token - r.admitted for r in served],
    }


def tail_gate_causes(run: RunResult, tenant: str, q: float = 99.0) -> dict[str, float]:
    """What held `tenant`'s slowest requests (TTFT at or above its `q`th percentile) in
    the gate: their mean gate part and the seconds of it during which the gate was
    held by the in-flight limit and by prefill pacing (mean per request). A pass ends
    only when the gate is empty or held, so the two add up to the gate part."""
    served = [
        r
        for r in run.records
        if r.tenant == tenant and r.first_token is not None and r.admitted is not None
    ]
    if not served:
        return {"gate": 0.0, "limit": 0.0, "pacing": 0.0}
    cut = percentile([r.first_token - r.arrival for r in served], q)
    tail = [r for r in served if r.first_token - r.arrival >= cut] or served
    held = [held_within(run.held_changes, r.queued, r.admitted) for r in tail]
    return {
        "gate": float(np.mean([r.admitted - r.queued for r in tail])),
        "limit": float(np.mean([h["limit"] for h in held])),
        "pacing": float(np.mean([h["pacing"] for h in held])),
    }


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0

"""Per-tenant rows of a benchmark run: `row["tenants"] = {name: {ttft_p50_s, ...}}`.

Each tenant's requests are summarized like the whole run (bench/metrics.summarize),
over the run's duration, so a tenant's tokens_per_s adds up to the run's output_tok_s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..queue_order import DEFAULT_TENANT
from .metrics import RequestRecord, Slo, summarize

TENANT_KEYS = (
    "requests",
    "completed",
    "rejected",
    "output_tokens",
    "ttft_mean_s",
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p99_s",
    "sla_attainment",
)


def per_tenant(records: Sequence[RequestRecord], duration_s: float, slo: Slo) -> dict[str, dict]:
    """{tenant: summary} with `tokens_per_s` (output tokens per second of the run);
    an empty statistic is None (JSON has no NaN, and the report writer cleans only the
    top level of a row)."""
    by: dict[str, list[RequestRecord]] = {}
    for r in records:
        by.setdefault(r.tenant or DEFAULT_TENANT, []).append(r)
    out: dict[str, dict] = {}
    for tenant in sorted(by):
        full = summarize(by[tenant], duration_s, slo)
        row = {k: full[k] for k in TENANT_KEYS}
        row["tokens_per_s"] = full["output_tok_s"]
        out[tenant] = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()
        }
    return out

"""Per-tenant /metrics families, refreshed from the gate's TenantStats.

A tenant's series appear the first time the tenant sends a request. Counters only go
up (what is new since the last refresh is added); TTFT is exported as a sum and a
count, so `rate(sum) / rate(count)` is the mean TTFT over any window.
"""

from __future__ import annotations

from typing import Any

from .gate import AdmissionGate, TenantStats

# family name: (description, kind, reader); kind "gauge" or "counter"
TENANT_FAMILIES: dict[str, tuple[str, str, Any]] = {
    "dynabatch_tenant_queue_length": (
        "requests of the tenant waiting in the admission queue",
        "gauge",
        lambda s: s.queued,
    ),
    "dynabatch_tenant_admitted_total": (
        "requests of the tenant admitted to the engine",
        "counter",
        lambda s: s.admitted,
    ),
    "dynabatch_tenant_rejected_total": (
        "requests of the tenant refused for its own queue limit (tenant_max_queue_size)",
        "counter",
        lambda s: s.rejected,
    ),
    "dynabatch_tenant_input_tokens_total": (
        "prompt tokens of the tenant's admitted requests",
        "counter",
        lambda s: s.input_tokens,
    ),
    "dynabatch_tenant_output_tokens_total": (
        "tokens generated for the tenant",
        "counter",
        lambda s: s.output_tokens,
    ),
    "dynabatch_tenant_ttft_seconds_sum": (
        "time to first token of the tenant's requests, summed (queue wait included)",
        "counter",
        lambda s: s.ttft_sum_s,
    ),
    "dynabatch_tenant_ttft_seconds_count": (
        "first tokens of the tenant's requests (the TTFT sum's count)",
        "counter",
        lambda s: s.ttft_count,
    ),
}


class TenantMetrics:
    def __init__(self, family_factory: Any, labels: dict[str, str]) -> None:
        """family_factory: pb_utils.MetricFamily; labels: the model's own labels."""
        fam = family_factory
        self._labels = labels
        # keep every family referenced for the model's lifetime (see metrics.py)
        self._families = {
            name: (
                fam(name=name, description=desc, kind=fam.GAUGE if k == "gauge" else fam.COUNTER),
                k,
                read,
            )
            for name, (desc, k, read) in TENANT_FAMILIES.items()
        }
        self._metrics: dict[tuple[str, str], Any] = {}
        self._counted: dict[tuple[str, str], float] = {}

    def update(self, gate: AdmissionGate) -> None:
        for tenant, stats in list(gate.tenants.items()):
            self._update_tenant(tenant, stats)

    def _update_tenant(self, tenant: str, stats: TenantStats) -> None:
        for name, (family, kind, read) in self._families.items():
            key = (name, tenant)
            metric = self._metrics.get(key)
            if metric is None:
                metric = family.Metric(labels={"tenant": tenant, **self._labels})
                self._metrics[key] = metric
            value = read(stats)
            if kind == "gauge":
                metric.set(value)
                continue
            delta = value - self._counted.get(key, 0)
            if delta > 0:
                metric.increment(delta)
                self._counted[key] = value

"""Benchmark workloads: Azure-format trace replay and synthetic arrivals.

Requested max new tokens (the documented rule): a real client does not know how long
the answer will be, so every request asks for the same `max_new_tokens` cap (default
1024, an option per workload). The trace's GeneratedTokens is the hidden true length
(GenerationRequest.true_output_len): the simulated engine ends the request there, as
if the model emitted EOS, or at the cap, whichever comes first. Requests whose
prompt + cap can never fit the KV cache are rejected by ServingCore.admission_error
and counted as rejected in every report.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from ..data import resolve_trace
from ..types import GenerationRequest

DEFAULT_MAX_NEW_TOKENS = 1024
TRACE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
OPTIONAL_COLUMNS = ("Tenant", "Priority")  # who sent it, its priority (admission order)


class WorkloadError(ValueError):
    """A trace file or workload option is invalid; the message says where and why."""


@dataclass(frozen=True)
class WorkItem:
    arrival_s: float  # seconds since the workload's first arrival
    prompt_len: int
    true_output_len: int  # hidden EOS; the request ends here or at max_new_tokens
    tenant: str = ""  # "" = the default tenant
    priority: int = 0

    def output_len(self, max_new_tokens: int) -> int:
        return min(self.true_output_len, max_new_tokens)


@dataclass(frozen=True)
class Workload:
    name: str
    items: tuple[WorkItem, ...]
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def __len__(self) -> int:
        return len(self.items)

    @property
    def span_s(self) -> float:
        return self.items[-1].arrival_s - self.items[0].arrival_s if self.items else 0.0

    @property
    def rate(self) -> float:
        """Mean arrival rate (requests/s) over the span."""
        return (len(self.items) - 1) / self.span_s if self.span_s > 0 else float("inf")

    def requests(self) -> list[GenerationRequest]:
        """One GenerationRequest per item; request ids are 0..n-1 in arrival order.

        Streaming, as clients that measure TTFT are (and so the serving core sees
        every token: RequestState.generated is exact for the controllers)."""
        return [
            GenerationRequest(
                request_id=i,
                prompt_ids=_Prompt(it.prompt_len),
                max_new_tokens=self.max_new_tokens,
                arrival_time=it.arrival_s,
                true_output_len=it.true_output_len,
                streaming=True,
                tenant=it.tenant,
                priority=it.priority,
            )
            for i, it in enumerate(self.items)
        ]

    def describe(self) -> dict:
        p = np.array([it.prompt_len for it in self.items]) if self.items else np.zeros(1)
        o = (
            np.array([it.output_len(self.max_new_tokens) for it in self.items])
            if self.items
            else np.zeros(1)
        )
        return {
            "workload": self.name,
            "requests": len(self.items),
            "span_s": round(self.span_s, 3),
            "rate_rps": round(self.rate, 3) if math.isfinite(self.rate) else None,
            "max_new_tokens": self.max_new_tokens,
            "prompt_mean": round(float(p.mean()), 1),
            "output_mean": round(float(o.mean()), 1),
        }


class _Prompt:
    """A prompt of n placeholder tokens without materialising the list (traces hold
    prompts of thousands of tokens; engines only read len() and maybe iterate)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [1] * len(range(*i.indices(self.n)))
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return 1

    def __iter__(self):
        return iter([1] * self.n)


def _shape(
    items: list[WorkItem],
    name: str,
    *,
    rate_scale: float,
    first_n: int | None,
    window_s: float | None,
    max_new_tokens: int,
) -> Workload:
    if rate_scale <= 0 or not math.isfinite(rate_scale):
        raise WorkloadError(f"rate scale must be > 0, got {rate_scale}")
    if max_new_tokens < 1:
        raise WorkloadError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if first_n is not None and first_n < 1:
        raise WorkloadError(f"first N must be >= 1, got {first_n}")
    items = sorted(items, key=lambda it: it.arrival_s)  # stable: ties keep file order
    if items:
        t0 = items[0].arrival_s
        items = [replace(it, arrival_s=(it.arrival_s - t0) / rate_scale) for it in items]
    if window_s is not None:  # the window is measured on the rescaled clock
        items = [it for it in items if it.arrival_s <= window_s]
    if first_n is not None:
        items = items[:first_n]
    if not items:
        raise WorkloadError(f"workload {name!r} holds no requests after filtering")
    suffix = "" if rate_scale == 1 else f"@x{rate_scale:g}"
    return Workload(name=name + suffix, items=tuple(items), max_new_tokens=max_new_tokens)


def load_trace(
    path: str | Path,
    *,
    rate_scale: float = 1.0,
    first_n: int | None = None,
    window_s: float | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> Workload:
    """Read an Azure LLM trace CSV (`TIMESTAMP,ContextTokens,GeneratedTokens`, optional
    `Tenant` and `Priority` columns in any position); the names
    `conv` and `code` select the bundled Azure traces (dynabatch.data).

    `rate_scale` multiplies the arrival rate (2 = twice as fast); `window_s` keeps the
    arrivals in the first so many seconds (after rescaling); `first_n` keeps the
    first N requests. A GeneratedTokens of 0 is read as 1 (the engine always emits one).
    """
    path = resolve_trace(path)
    if not path.is_file():
        raise WorkloadError(f"trace file not found: {path}")
    items: list[WorkItem] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise WorkloadError(f"{path}: empty file (expected header {','.join(TRACE_COLUMNS)})")
        cols = [h.strip() for h in header]
        missing = [c for c in TRACE_COLUMNS if c not in cols]
        if missing:
            raise WorkloadError(
                f"{path}: header {header!r} lacks column(s) {', '.join(missing)} "
                f"(expected {','.join(TRACE_COLUMNS)})"
            )
        it, ic, ig = (cols.index(c) for c in TRACE_COLUMNS)
        i_tenant, i_prio = (cols.index(c) if c in cols else None for c in OPTIONAL_COLUMNS)
        t0: datetime | None = None
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(cols):
                raise WorkloadError(
                    f"{path}:{lineno}: expected {len(cols)} fields, got {len(row)}: {row!r}"
                )
            ts = _parse_time(row[it].strip(), path, lineno)
            prompt = _parse_count(row[ic], "ContextTokens", path, lineno, minimum=1)
            output = _parse_count(row[ig], "GeneratedTokens", path, lineno, minimum=0)
            t0 = ts if t0 is None else t0
            tenant = row[i_tenant].strip() if i_tenant is not None else ""
            prio = 0
            if i_prio is not None and row[i_prio].strip():
                prio = _parse_count(row[i_prio], "Priority", path, lineno, minimum=-(2**31))
            items.append(WorkItem((ts - t0).total_seconds(), prompt, max(output, 1), tenant, prio))
    if not items:
        raise WorkloadError(f"{path}: no requests after the header")
    return _shape(
        items,
        path.stem,
        rate_scale=rate_scale,
        first_n=first_n,
        window_s=window_s,
        max_new_tokens=max_new_tokens,
    )


def _parse_time(text: str, path: Path, lineno: int) -> datetime:
    # Azure writes 7 fractional digits; fromisoformat (3.11+) reads them, but trim to 6
    # so older Pythons and other producers behave the same.
    main, dot, frac = text.partition(".")
    try:
        return datetime.fromisoformat(main + (dot + frac[:6] if dot else ""))
    except ValueError:
        raise WorkloadError(
            f"{path}:{lineno}: bad TIMESTAMP {text!r} (expected YYYY-MM-DD HH:MM:SS[.fffffff])"
        ) from None


def _parse_count(text: str, column: str, path: Path, lineno: int, *, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise WorkloadError(f"{path}:{lineno}: {column} must be an integer, got {text!r}") from None
    if value < minimum:
        raise WorkloadError(f"{path}:{lineno}: {column} must be >= {minimum}, got {value}")
    return value


def synthetic(
    n: int,
    rate: float,
    *,
    arrival: str = "poisson",
    cv: float = 1.0,
    prompt_median: float = 512,
    prompt_sigma: float = 1.0,
    output_median: float = 128,
    output_sigma: float = 1.0,
    max_len: int = 8192,
    seed: int = 0,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    name: str | None = None,
) -> Workload:
    """`n` requests at `rate` req/s: Poisson (exponential gaps) or gamma gaps with
    coefficient of variation `cv` (burstier when cv > 1); lognormal prompt and output
    lengths given by median and sigma, clipped to [1, max_len]."""
    if n < 1 or rate <= 0 or cv <= 0:
        raise WorkloadError(
            f"synthetic workload needs n >= 1, rate > 0, cv > 0 (got {n}, {rate}, {cv})"
        )
    rng = np.random.default_rng(seed)
    if arrival == "poisson":
        gaps = rng.exponential(1.0 / rate, n)
    elif arrival == "gamma":
        shape = 1.0 / (cv * cv)
        gaps = rng.gamma(shape, 1.0 / (rate * shape), n)
    else:
        raise WorkloadError(f"arrival must be 'poisson' or 'gamma', got {arrival!r}")
    gaps[0] = 0.0
    times = np.cumsum(gaps)
    prompts = np.clip(np.rint(rng.lognormal(math.log(prompt_median), prompt_sigma, n)), 1, max_len)
    outputs = np.clip(np.rint(rng.lognormal(math.log(output_median), output_sigma, n)), 1, max_len)
    items = [WorkItem(float(t), int(p), int(o)) for t, p, o in zip(times, prompts, outputs)]
    label = name or f"synthetic-{arrival}-{rate:g}rps"
    return Workload(name=label, items=tuple(items), max_new_tokens=max_new_tokens)


def resample(
    lengths_from: Workload,
    n: int,
    rate: float,
    *,
    seed: int = 0,
    name: str | None = None,
    arrival: str = "poisson",
    cv: float = 1.0,
) -> Workload:
    """Poisson (or bursty gamma, coefficient of variation `cv`) arrivals at `rate` with
    (prompt, output) pairs drawn from another workload: the capacity search keeps a
    trace's length mix and varies only the rate. The same seed gives the same draw and
    the same arrival pattern (scaled by the rate) at every rate."""
    if n < 1 or rate <= 0 or cv <= 0:
        raise WorkloadError(f"resample needs n >= 1, rate > 0, cv > 0 (got {n}, {rate}, {cv})")
    rng = np.random.default_rng(seed)
    if arrival == "poisson":
        gaps = rng.exponential(1.0 / rate, n)
    elif arrival == "gamma":
        shape = 1.0 / (cv * cv)
        gaps = rng.gamma(shape, 1.0 / (rate * shape), n)
    else:
        raise WorkloadError(f"arrival must be 'poisson' or 'gamma', got {arrival!r}")
    gaps[0] = 0.0
    times = np.cumsum(gaps)
    pick = rng.integers(0, len(lengths_from.items), n)
    items = tuple(
        WorkItem(float(t), lengths_from.items[k].prompt_len, lengths_from.items[k].true_output_len)
        for t, k in zip(times, pick)
    )
    return Workload(
        name=name or f"{lengths_from.name}-{arrival}-{rate:g}rps",
        items=items,
        max_new_tokens=lengths_from.max_new_tokens,
    )

"""The fleet's workloads: a length mix and an arrival process, at any fleet-wide rate.

- `conv`: Azure LLM 2023 conversation lengths, Poisson arrivals.
- `bursty`: the same lengths, gamma inter-arrival gaps with coefficient of variation 2
  (requests come in clumps; the mean rate is unchanged).
- `bimodal`: Poisson arrivals; 80 % short chat turns (prompt ~256, output ~64 tokens),
  20 % long summarisation-style requests (prompt ~3000, output ~500), lognormal around
  those medians with sigma 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bench.workload import WorkItem, Workload, WorkloadError, load_trace

WORKLOADS = ("conv", "bursty", "bimodal")
BURSTY_CV = 2.0


@dataclass(frozen=True)
class LengthMix:
    name: str
    pairs: tuple[tuple[int, int], ...]  # (prompt_len, true_output_len)
    max_new_tokens: int


def _bimodal_pairs(n: int = 4000, seed: int = 12345) -> tuple[tuple[int, int], ...]:
    rng = np.random.default_rng(seed)
    long = rng.random(n) < 0.2
    p_med = np.where(long, 3000.0, 256.0)
    o_med = np.where(long, 500.0, 64.0)
    prompts = np.clip(np.rint(p_med * rng.lognormal(0.0, 0.3, n)), 1, 8000)
    outputs = np.clip(np.rint(o_med * rng.lognormal(0.0, 0.3, n)), 1, 2000)
    return tuple((int(p), int(o)) for p, o in zip(prompts, outputs))


def length_mix(workload: str) -> LengthMix:
    if workload in ("conv", "bursty"):
        trace = load_trace("conv")
        pairs = tuple((it.prompt_len, it.true_output_len) for it in trace.items)
        return LengthMix(workload, pairs, trace.max_new_tokens)
    if workload == "bimodal":
        return LengthMix(workload, _bimodal_pairs(), 2048)
    raise WorkloadError(f"fleet workload must be one of {', '.join(WORKLOADS)}; got {workload!r}")


def fleet_workload(mix: LengthMix, n: int, rate: float, *, seed: int) -> Workload:
    """`n` requests at a mean `rate` req/s (the whole fleet's), lengths drawn from `mix`."""
    if n < 1 or rate <= 0:
        raise WorkloadError(f"fleet workload needs n >= 1 and rate > 0 (got {n}, {rate})")
    rng = np.random.default_rng(seed)
    if mix.name == "bursty":
        shape = 1.0 / (BURSTY_CV * BURSTY_CV)
        gaps = rng.gamma(shape, 1.0 / (rate * shape), n)
    else:
        gaps = rng.exponential(1.0 / rate, n)
    gaps[0] = 0.0
    times = np.cumsum(gaps)
    pick = rng.integers(0, len(mix.pairs), n)
    items = tuple(WorkItem(float(t), mix.pairs[k][0], mix.pairs[k][1]) for t, k in zip(times, pick))
    return Workload(f"{mix.name}-{rate:g}rps", items, mix.max_new_tokens)

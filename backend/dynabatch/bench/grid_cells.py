"""What the capacity grid is made of: profiles x workloads x SLO levels.

Workloads are length mixes (the arrivals are redrawn per probe at the probed rate):
the two Azure traces, and synthetic mixes that stress one thing each. SLO levels:
MLPerf server (by model size), MLPerf interactive (0.5 s / 30 ms), and a tight TPOT
(twice the profile's single-request step, with the server TTFT) where the prefill
that enters each iteration decides who meets it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

from .capacity import default_slo
from .metrics import Slo
from .workload import DEFAULT_MAX_NEW_TOKENS, Workload, load_trace, synthetic

PROFILES = ("llama-2-13b-a100-40gb", "llama-3-8b-h100", "llama-2-70b-tp4-h100")
MLPERF_INTERACTIVE = Slo(0.5, 0.03)
_LENGTH_POOL = 4000  # requests in a synthetic length mix (a probe draws from it)


@dataclass(frozen=True)
class GridWorkload:
    name: str
    lengths: Callable[[], Workload]  # the (prompt, output) pool probes draw from
    arrival: str = "poisson"
    cv: float = 1.0


def _mix(name: str, *parts: tuple[float, float, float, float, float]) -> Workload:
    """Concatenated lognormal pools: (share, prompt median, prompt sigma, output median,
    output sigma) each; the probe's random draw mixes them in these shares."""
    items: list = []
    for k, (share, pm, ps, om, osig) in enumerate(parts):
        n = max(1, round(share * _LENGTH_POOL))
        wl = synthetic(
            n,
            1.0,
            prompt_median=pm,
            prompt_sigma=ps,
            output_median=om,
            output_sigma=osig,
            seed=100 + k,
            max_len=8192,
        )
        items += wl.items
    return Workload(name=name, items=tuple(items), max_new_tokens=DEFAULT_MAX_NEW_TOKENS)


@cache
def _trace(name: str) -> Workload:
    return load_trace(name)


WORKLOADS: dict[str, GridWorkload] = {
    w.name: w
    for w in (
        GridWorkload("conv", lambda: _trace("conv")),
        GridWorkload("code", lambda: _trace("code")),
        GridWorkload(
            "short-long",  # chat turns with a fifth of long summarisation-like requests
            lambda: _mix("short-long", (0.8, 256, 0.6, 64, 0.8), (0.2, 2048, 0.4, 512, 0.5)),
        ),
        GridWorkload(
            "heavy-tail",  # most answers short, a few run to the cap
            lambda: _mix("heavy-tail", (1.0, 512, 0.8, 48, 1.8)),
        ),
        GridWorkload(
            "bursty",  # the conversation mix with gamma arrivals, CV 3
            lambda: replace(_trace("conv"), name="conv"),
            arrival="gamma",
            cv=3.0,
        ),
        GridWorkload(
            "long-prompt",  # RAG-like: long contexts, short answers
            lambda: _mix("long-prompt", (1.0, 3000, 0.4, 128, 0.8)),
        ),
    )
}


def tight_tpot_s(profile: str) -> float:
    """Twice the single-request decode step of the profile (ms resolution)."""
    from ..engines.simulated.latency import LatencyModel
    from ..engines.simulated.profiles import get_profile

    return round(2 * LatencyModel(get_profile(profile)).linear_s(1), 3)


def slo_level(level: str, profile: str) -> Slo:
    server = default_slo(profile)
    if level == "server":
        return server
    if level == "interactive":
        return MLPERF_INTERACTIVE
    if level == "tight":
        return Slo(server.ttft_s, tight_tpot_s(profile))
    raise ValueError(f"unknown SLO level {level!r}; known: {', '.join(SLO_LEVELS)}")


SLO_LEVELS = ("server", "interactive", "tight")


def grid_profiles() -> tuple[str, ...]:
    """The grid's profiles, plus any H200 profile the simulator knows."""
    from ..engines.simulated.profiles import PROFILES as KNOWN

    return PROFILES + tuple(p for p in KNOWN if "h200" in p and p not in PROFILES)

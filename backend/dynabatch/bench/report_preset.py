"""`dynabatch bench --report` (scripts/bench_report): the default comparison.

Both Azure traces x two profiles x every policy, plus capacity searches for the
headline policies, sized to finish in under 10 minutes on 2 cores. What is run:

- llama-2-13b-a100-40gb (memory-constrained: ~16k KV tokens) and
  llama-2-7b-a100-80gb (roomier: ~120k KV tokens);
- each trace's first REPORT_REQUESTS requests, arrivals sped up by the profile's
  RATE_SCALE so that TensorRT-LLM's default is saturated (its queue grows);
- max_new_tokens = 1024 for every request (workload.py's documented rule).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from ..data import CODE_TRACE, CONV_TRACE
from .report import format_markdown, write_csv, write_json

TRACES = (str(CONV_TRACE), str(CODE_TRACE))  # bundled with the package (CC-BY 4.0)
PROFILES = ("llama-2-13b-a100-40gb", "llama-2-7b-a100-80gb")
REPORT_REQUESTS = 2000
RATE_SCALE = {"llama-2-13b-a100-40gb": 1.0, "llama-2-7b-a100-80gb": 4.0}
CAPACITY_POLICIES = (
    "trtllm_default",
    "vllm_default",
    "trtllm_tuner",
    "sglang_ratio",
    "paper_memory",
    "paper_sla",
    "paper",
    "adaptive",
    "oracle",
)
CAPACITY_REQUESTS = 400

HEADLINE_KEYS = (
    "best_static",
    "adaptive_vs_trtllm_default",
    "adaptive_vs_best_static",
    "adaptive_vs_vllm_default",
    "adaptive_vs_paper",
    "adaptive_vs_sglang_ratio",
    "adaptive_vs_oracle",
)


def run_report(args) -> int:
    from .matrix import run_matrix
    from .workload import load_trace

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    traces = args.trace or list(TRACES)
    profiles = args.profile or list(PROFILES)
    n = args.first_n or REPORT_REQUESTS
    rows, heads = [], []
    for prof in profiles:
        scale = args.rate_scale if args.rate_scale != 1.0 else RATE_SCALE.get(prof, 1.0)
        wls = [
            load_trace(t, rate_scale=scale, first_n=n, max_new_tokens=args.max_new_tokens)
            for t in traces
        ]
        r, h = run_matrix(wls, [prof], args, plot_dir=out, label=f"bench {prof}")
        rows += r
        heads += h
    cap_rows = _capacity(traces, profiles, args)
    write_json(
        rows,
        out / "report.json",
        {"command": "bench --report", "headlines": heads, "requests": n, "rate_scale": RATE_SCALE},
    )
    write_csv(rows, out / "report.csv")
    if cap_rows:
        write_json(cap_rows, out / "capacity.json", {"command": "bench --report (capacity)"})
    md = markdown(rows, heads, cap_rows)
    (out / "report.md").write_text(md)
    print(md)
    print(f"report: {time.monotonic() - t0:.0f} s; files under {out}/", file=sys.stderr)
    return 0


def _capacity(traces, profiles, args) -> list[dict]:
    import argparse

    from .capacity_runner import capacity_table
    from .workload import load_trace

    if getattr(args, "no_capacity", False):
        return []
    cap_args = argparse.Namespace(
        policies=",".join(CAPACITY_POLICIES),
        slo_ttft=args.slo_ttft,
        slo_tpot=args.slo_tpot,
        jobs=args.jobs,
        requests=CAPACITY_REQUESTS,
        start_rate=1.0,
        rel_tol=0.05,
        max_probes=9,
        seeds=(0,),
    )
    # Length mix: the whole trace (the Poisson rate replaces its arrival times).
    wls = [load_trace(t, max_new_tokens=args.max_new_tokens) for t in traces]
    return capacity_table(wls, list(profiles), cap_args)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.2f}"
    return str(v)


def markdown(rows: list[dict], heads: list[dict], cap_rows: list[dict]) -> str:
    parts = []
    for h in heads:
        group = [r for r in rows if r["workload"] == h["workload"] and r["profile"] == h["profile"]]
        first = group[0] if group else {}
        parts.append(f"### {h['workload']} on {h['profile']}\n")
        parts.append(
            f"{first.get('requests', 0)} requests, SLO TTFT {first.get('slo_ttft_s')} s / "
            f"TPOT {first.get('slo_tpot_s')} s, max_new_tokens {first.get('max_new_tokens')}.\n"
        )
        parts.append(format_markdown(group) + "\n")
        parts.append(
            "Headline: " + ", ".join(f"{k} = {_fmt(h[k])}" for k in HEADLINE_KEYS if k in h) + "\n"
        )
    if cap_rows:
        from .report import CAPACITY_COLUMNS

        parts.append("### Capacity (highest Poisson rate with P99 TTFT and TPOT within the SLO)\n")
        for prof in dict.fromkeys(r["profile"] for r in cap_rows):
            group = [r for r in cap_rows if r["profile"] == prof]
            parts.append(f"**{prof}**\n")
            parts.append(format_markdown(group, CAPACITY_COLUMNS) + "\n")
    return "\n".join(parts)

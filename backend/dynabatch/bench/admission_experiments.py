"""The admission-order experiments of docs/ADMISSION.md, on the virtual clock.

    python -m dynabatch.bench.admission_experiments fairness --seeds 0-4
    python -m dynabatch.bench.admission_experiments sjf --seeds 0-4

Both draw 1000 Poisson arrivals with the Azure conversation trace's (prompt, output)
mix (`resample`, seed N) at a fraction of the capacity of `adaptive` on that very
workload: the highest rate with P99 TTFT and TPOT within the SLO, from

    dynabatch capacity --trace conv --policies adaptive --requests 1000 --seed N

(CAPACITY_BY_SEED below; a seed's arrival gaps only scale with the rate, so the
workload at 0.9 x capacity is the capacity probe's workload slowed down). They run the
same ServingCore, gate and controller as the server (bench/runner.run_policy). Each
seed is one paired workload: every order serves exactly the same requests.

- fairness: two tenants, `heavy` sending 10x the requests of `light`, at 90 % of
  capacity. Light's P99 TTFT under fcfs and fair vs light's requests served alone
  (same arrivals, the heavy tenant removed); total throughput fair vs fcfs.
- sjf: one tenant at 80 % of capacity; mean / median / longest TTFT, sjf vs fcfs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from statistics import median

import numpy as np

from ..queue_order import QueueOrderConfig
from .capacity import default_slo
from .runner import MAXU, PolicySpec, run_policy
from .workload import Workload, load_trace, resample

PROFILE = "llama-2-13b-a100-40gb"
# `dynabatch capacity --trace conv --policies adaptive --requests 1000 --seed N
#  --profile P`, req/s
CAPACITY_BY_SEED = {
    "llama-2-13b-a100-40gb": {0: 0.62, 1: 0.66, 2: 0.48, 3: 0.81, 4: 0.75},
    "llama-2-7b-a100-80gb": {0: 5.25, 1: 5.25, 2: 4.62, 3: 4.62, 4: 4.88},
}


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def two_tenant_workload(base: Workload, n: int, rate: float, seed: int) -> Workload:
    """`n` Poisson arrivals at `rate`; each is `light` with probability 1/11, so `heavy`
    sends 10x as many requests."""
    wl = resample(base, n, rate, seed=seed, name=f"conv-2tenant-{rate:g}rps-s{seed}")
    rng = np.random.default_rng(10_000 + seed)
    light = rng.random(len(wl.items)) < 1.0 / 11.0
    items = tuple(
        replace(it, tenant="light" if is_light else "heavy")
        for it, is_light in zip(wl.items, light)
    )
    return replace(wl, items=items)


def only_tenant(wl: Workload, tenant: str) -> Workload:
    return replace(
        wl, name=f"{wl.name}-{tenant}", items=tuple(it for it in wl.items if it.tenant == tenant)
    )


def _run(wl: Workload, args, queue_policy: str) -> dict:
    spec = PolicySpec(args.policy, args.policy, MAXU)
    order = QueueOrderConfig(policy=queue_policy, aging_s=args.aging_s)
    slo = default_slo(args.profile)
    return run_policy(wl, args.profile, spec, slo=slo, queue_order=order).row


def capacity(args, seed: int) -> float:
    if args.capacity:
        return args.capacity
    measured = CAPACITY_BY_SEED.get(args.profile, {})
    if seed not in measured:
        raise SystemExit(f"no measured capacity for {args.profile} seed {seed}: give --capacity")
    return measured[seed]


def _stat(values: list[float]) -> dict:
    return {"median": median(values), "min": min(values), "max": max(values)}


def fairness(args) -> dict:
    base = load_trace("conv")
    per_seed = []
    for seed in args.seed_list:
        rate = args.load * capacity(args, seed)
        wl = two_tenant_workload(base, args.requests, rate, seed)
        alone = _run(only_tenant(wl, "light"), args, "fcfs")
        fcfs = _run(wl, args, "fcfs")
        fair = _run(wl, args, "fair")
        light_alone = alone["ttft_p99_s"]
        per_seed.append(
            {
                "seed": seed,
                "rate_rps": rate,
                "light_requests": alone["requests"],
                "light_ttft_p99_alone_s": light_alone,
                "light_ttft_p99_fcfs_s": fcfs["tenants"]["light"]["ttft_p99_s"],
                "light_ttft_p99_fair_s": fair["tenants"]["light"]["ttft_p99_s"],
                "fcfs_vs_alone": fcfs["tenants"]["light"]["ttft_p99_s"] / light_alone,
                "fair_vs_alone": fair["tenants"]["light"]["ttft_p99_s"] / light_alone,
                "heavy_ttft_p99_fcfs_s": fcfs["tenants"]["heavy"]["ttft_p99_s"],
                "heavy_ttft_p99_fair_s": fair["tenants"]["heavy"]["ttft_p99_s"],
                "throughput_fair_vs_fcfs": fair["output_tok_s"] / fcfs["output_tok_s"],
            }
        )
        print(json.dumps(per_seed[-1]), file=sys.stderr)
    keys = [k for k in per_seed[0] if k not in ("seed", "light_requests", "rate_rps")]
    return {
        "experiment": "fairness",
        "load": args.load,
        "per_seed": per_seed,
        "summary": {k: _stat([r[k] for r in per_seed]) for k in keys},
    }


def sjf(args) -> dict:
    base = load_trace("conv")
    per_seed = []
    for seed in args.seed_list:
        rate = args.load * capacity(args, seed)
        wl = resample(base, args.requests, rate, seed=seed)
        rows = {q: _run(wl, args, q) for q in ("fcfs", "sjf")}
        f, s = rows["fcfs"], rows["sjf"]
        per_seed.append(
            {
                "seed": seed,
                "rate_rps": rate,
                "gate_waited_frac_fcfs": f["gate_waited_frac"],
                "gate_wait_mean_fcfs_s": f["gate_wait_mean_s"],
                "ttft_mean_fcfs_s": f["ttft_mean_s"],
                "ttft_mean_sjf_s": s["ttft_mean_s"],
                "ttft_p50_fcfs_s": f["ttft_p50_s"],
                "ttft_p50_sjf_s": s["ttft_p50_s"],
                "ttft_p99_fcfs_s": f["ttft_p99_s"],
                "ttft_p99_sjf_s": s["ttft_p99_s"],
                "ttft_max_fcfs_s": f["ttft_max_s"],
                "ttft_max_sjf_s": s["ttft_max_s"],
                "mean_cut": 1.0 - s["ttft_mean_s"] / f["ttft_mean_s"],
                "median_cut": 1.0 - s["ttft_p50_s"] / f["ttft_p50_s"],
                "throughput_sjf_vs_fcfs": s["output_tok_s"] / f["output_tok_s"],
            }
        )
        print(json.dumps(per_seed[-1]), file=sys.stderr)
    keys = [k for k in per_seed[0] if k not in ("seed", "rate_rps")]
    return {
        "experiment": "sjf",
        "load": args.load,
        "aging_s": args.aging_s,
        "per_seed": per_seed,
        "summary": {k: _stat([r[k] for r in per_seed]) for k in keys},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("experiment", choices=("fairness", "sjf"))
    p.add_argument("--seeds", default="0-4", help="paired seeds, e.g. 0-4 or 1,3,5")
    p.add_argument(
        "--requests", type=int, default=0, help="arrivals per run (default per experiment)"
    )
    p.add_argument(
        "--load", type=float, default=0.0, help="fraction of capacity (default per experiment)"
    )
    p.add_argument(
        "--capacity", type=float, default=0.0, help="capacity req/s (default: per seed, measured)"
    )
    p.add_argument("--policy", default="adaptive", help="controller (batch_policy)")
    p.add_argument("--profile", default=PROFILE, help=f"simulator profile (default {PROFILE})")
    p.add_argument("--aging-s", type=float, default=10.0, help="queue aging bound, seconds")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON")
    args = p.parse_args(argv)
    args.seed_list = _seeds(args.seeds)
    if args.experiment == "fairness":
        args.requests = args.requests or 1000
        args.load = args.load or 0.9
        result = fairness(args)
    else:
        args.requests = args.requests or 1000
        args.load = args.load or 0.8
        result = sjf(args)
    result["argv"] = sys.argv[1:] if argv is None else argv
    text = json.dumps(result, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    for key, st in result["summary"].items():
        print(f"{key:28s} median {st['median']:.3f}  [{st['min']:.3f}, {st['max']:.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

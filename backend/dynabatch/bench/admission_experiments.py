"""The admission-order experiments of docs/ADMISSION.md, on the virtual clock.

    python -m dynabatch.bench.admission_experiments fairness --seeds 0-4
    python -m dynabatch.bench.admission_experiments sjf --seeds 0-4

Both draw 1000 Poisson arrivals with the Azure conversation trace's (prompt, output)
mix (`resample`, seed N) at a fraction of a capacity of `adaptive` on that very
workload. Two definitions (`--capacity-def`):

- `slo` (default): the highest rate with P99 TTFT and TPOT within the SLO, from
  `dynabatch capacity --trace conv --policies adaptive --requests 1000 --seed N`
  (CAPACITY_BY_SEED below; a seed's arrival gaps only scale with the rate, so the
  workload at 0.9 x capacity is the capacity probe's workload slowed down).
- `throughput`: the utilisation meaning of "X % of capacity" in queueing theory: the
  highest request rate the server sustains, i.e. its completion rate while saturated,
  measured per seed by `throughput_capacity` (the same requests arriving at
  OVERLOAD_RPS, far faster than they are served).

They run the
same ServingCore, gate and controller as the server (bench/runner.run_policy). Each
seed is one paired workload: every order serves exactly the same requests.

- fairness: two tenants, `heavy` sending 10x the requests of `light`, at 90 % of
  capacity. Light's P99 TTFT under fcfs and fair vs light's requests served alone
  (same arrivals, the heavy tenant removed); total throughput fair vs fcfs.
- sjf: one tenant at 80 % of capacity; mean / median / longest TTFT, sjf vs fcfs.
- capacity: both capacities per seed (`--capacity-def throughput` measures the first).

`--max-num-tokens N` builds the simulated engine with that `max_num_tokens` (chunked
prefill on, the default): the most prompt + decode tokens of one iteration, so a long
prompt is prefilled over several iterations. It goes to the engine of every run,
including the throughput-capacity run, so the load is a fraction of what that very
build serves.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from statistics import median

import numpy as np

from ..params import ConfigError
from ..queue_order import QueuedRequest, QueueOrderConfig, ShortestJobOrder
from .capacity import default_slo
from .closed_loop import parse_engine_opts
from .metrics import RequestRecord
from .runner import MAXU, PolicySpec, RunResult, run_policy
from .ttft_parts import TTFT_PARTS, percentile, tail_gate_causes, ttft_split
from .workload import Workload, load_trace, resample

PROFILE = "llama-2-13b-a100-40gb"
# the simulated engine's (and TensorRT-LLM's) default max_num_tokens
DEFAULT_MAX_NUM_TOKENS = 8192
# the engine's default KV block; max_num_tokens must hold at least one
TOKENS_PER_BLOCK = 64
CAPACITY_DEFS = ("slo", "throughput")
# Arrival rate of the saturation run: far above what either profile serves (13B: ~1.4
# req/s, 7B: ~5.3 req/s), so the gate never empties while the rate is measured.
OVERLOAD_RPS = 50.0
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


class TrueLengthJobOrder(ShortestJobOrder):
    """Benchmark-only `sjf` with a perfect prediction: the job is the prompt plus the
    output the request will really generate (the trace's), not the predicted one. It
    tells how much of `sjf`'s result is lost to prediction error."""

    def key(self, item: QueuedRequest) -> tuple:
        r = item.request
        out = r.max_new_tokens if r.true_output_len is None else r.true_output_len
        return (r.prompt_len + min(out, r.max_new_tokens), item.seq)


def engine_kw(args) -> dict:
    """The simulated engine's build for every run of an experiment: the server's own
    parameter (`max_num_tokens` of config.pbtxt), checked by the same spec and the same
    rule as the server's build (engines.simulated.from_parameters)."""
    kw = parse_engine_opts([f"max_num_tokens={args.max_num_tokens}"])
    if kw["max_num_tokens"] < TOKENS_PER_BLOCK:
        raise ConfigError(
            "max_num_tokens", kw["max_num_tokens"], f"int >= tokens_per_block ({TOKENS_PER_BLOCK})"
        )
    return kw


def _run_full(wl: Workload, args, queue_policy: str) -> RunResult:
    spec = PolicySpec(args.policy, args.policy, MAXU)
    config = QueueOrderConfig(policy=queue_policy, aging_s=args.aging_s)
    slo = default_slo(args.profile)
    order = None
    if queue_policy == "sjf" and getattr(args, "sjf_lengths", "predicted") == "true":
        order = TrueLengthJobOrder()
    return run_policy(
        wl,
        args.profile,
        spec,
        slo=slo,
        queue_order=config,
        order=order,
        engine_kw=engine_kw(args),
    )


def _run(wl: Workload, args, queue_policy: str) -> dict:
    return _run_full(wl, args, queue_policy).row


def saturated_rate(records: Sequence[RequestRecord]) -> float:
    """Completions per second between the 10th and the 90th percentile completion: the
    service rate while saturated, without the start (the batch filling) and the drain
    (the last requests running in a shrinking batch)."""
    finish = sorted(r.finish for r in records if r.completed and r.finish is not None)
    if len(finish) < 10:
        raise ValueError(f"{len(finish)} completed requests: too few to measure a rate")
    lo, hi = len(finish) // 10, (9 * len(finish)) // 10
    return (hi - lo) / (finish[hi] - finish[lo])


def throughput_capacity(args, seed: int) -> float:
    """The highest request rate the server sustains on seed `seed`'s requests: its
    completion rate when they arrive at OVERLOAD_RPS, under `args.policy` and fcfs."""
    wl = resample(load_trace("conv"), args.requests, OVERLOAD_RPS, seed=seed)
    return saturated_rate(_run_full(wl, args, "fcfs").records)


def capacity(args, seed: int) -> float:
    if args.capacity:
        return args.capacity
    if args.capacity_def == "throughput":
        return throughput_capacity(args, seed)
    if args.max_num_tokens != DEFAULT_MAX_NUM_TOKENS:
        # the tabled SLO capacities were measured with the default build
        raise SystemExit(
            f"--max-num-tokens {args.max_num_tokens}: no measured SLO capacity for that "
            "build; use --capacity-def throughput or give --capacity"
        )
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
        runs = {
            "alone": _run_full(only_tenant(wl, "light"), args, "fcfs"),
            "fcfs": _run_full(wl, args, "fcfs"),
            "fair": _run_full(wl, args, "fair"),
        }
        alone, fcfs, fair = (runs[k].row for k in ("alone", "fcfs", "fair"))
        split = {k: ttft_split(r.records, "light") for k, r in runs.items()}
        tail = tail_gate_causes(runs["fair"], "light")
        light_alone = alone["ttft_p99_s"]
        per_seed.append(
            {
                "seed": seed,
                "capacity_rps": rate / args.load,
                "rate_rps": rate,
                "light_requests": alone["requests"],
                "gate_waited_frac_fcfs": fcfs["gate_waited_frac"],
                "gate_wait_mean_fcfs_s": fcfs["gate_wait_mean_s"],
                "engine_queue_wait_mean_fcfs_s": fcfs["engine_queue_wait_mean_s"],
                "light_ttft_p99_alone_s": light_alone,
                "light_ttft_p99_fcfs_s": fcfs["tenants"]["light"]["ttft_p99_s"],
                "light_ttft_p99_fair_s": fair["tenants"]["light"]["ttft_p99_s"],
                "fcfs_vs_alone": fcfs["tenants"]["light"]["ttft_p99_s"] / light_alone,
                "fair_vs_alone": fair["tenants"]["light"]["ttft_p99_s"] / light_alone,
                "heavy_ttft_p99_fcfs_s": fcfs["tenants"]["heavy"]["ttft_p99_s"],
                "heavy_ttft_p99_fair_s": fair["tenants"]["heavy"]["ttft_p99_s"],
                "throughput_fair_vs_fcfs": fair["output_tok_s"] / fcfs["output_tok_s"],
                # what `fair` costs the decoding requests (prefill pacing protects TPOT)
                "tpot_p99_fcfs_s": fcfs["tpot_p99_s"],
                "tpot_p99_fair_s": fair["tpot_p99_s"],
                # where the light tenant's TTFT goes: the P99 of each part on its own
                **{
                    f"light_{part}_p99_{run}_s": percentile(split[run][part], 99)
                    for part in TTFT_PARTS
                    for run in ("alone", "fcfs", "fair")
                },
                # TTFT >= its engine part request by request, so the P99 of the engine
                # part under `fair` bounds the light P99 from below whatever the gate
                # does: as a multiple of alone, the best an admission order could reach
                "engine_floor_vs_alone": percentile(split["fair"]["engine"], 99) / light_alone,
                # the light requests at or above its P99 TTFT under `fair`: their gate
                # part and what held the gate meanwhile (mean per request)
                "light_tail_gate_fair_s": tail["gate"],
                "light_tail_held_by_limit_fair_s": tail["limit"],
                "light_tail_held_by_pacing_fair_s": tail["pacing"],
                "gate_held_by_limit_frac_fair": fair["gate_held_by_limit_frac"],
                "gate_held_by_pacing_frac_fair": fair["gate_held_by_pacing_frac"],
            }
        )
        print(json.dumps(per_seed[-1]), file=sys.stderr)
    keys = [k for k in per_seed[0] if k not in ("seed", "light_requests")]
    return {
        "experiment": "fairness",
        "max_num_tokens": args.max_num_tokens,
        "load": args.load,
        "capacity_def": args.capacity_def,
        "per_seed": per_seed,
        "summary": {k: _stat([r[k] for r in per_seed]) for k in keys},
    }


def sjf(args) -> dict:
    base = load_trace("conv")
    per_seed = []
    for seed in args.seed_list:
        rate = args.load * capacity(args, seed)
        wl = resample(base, args.requests, rate, seed=seed)
        runs = {q: _run_full(wl, args, q) for q in ("fcfs", "sjf")}
        f, s = runs["fcfs"].row, runs["sjf"].row
        split = {q: ttft_split(r.records) for q, r in runs.items()}
        per_seed.append(
            {
                "seed": seed,
                "capacity_rps": rate / args.load,
                "rate_rps": rate,
                "gate_waited_frac_fcfs": f["gate_waited_frac"],
                "gate_wait_mean_fcfs_s": f["gate_wait_mean_s"],
                "engine_queue_wait_mean_fcfs_s": f["engine_queue_wait_mean_s"],
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
                # where the mean TTFT goes (the means of the parts add up to it)
                **{
                    f"{part}_mean_{q}_s": float(np.mean(split[q][part]))
                    for part in TTFT_PARTS
                    for q in ("fcfs", "sjf")
                },
                # an order can only move the gate part: its share of the fcfs mean TTFT
                # is the largest mean cut any order could reach on these requests
                "gate_share_of_ttft_mean_fcfs": float(np.mean(split["fcfs"]["gate"]))
                / f["ttft_mean_s"],
                "gate_held_by_limit_frac_fcfs": f["gate_held_by_limit_frac"],
                "gate_held_by_pacing_frac_fcfs": f["gate_held_by_pacing_frac"],
            }
        )
        print(json.dumps(per_seed[-1]), file=sys.stderr)
    keys = [k for k in per_seed[0] if k != "seed"]
    return {
        "experiment": "sjf",
        "max_num_tokens": args.max_num_tokens,
        "sjf_lengths": args.sjf_lengths,
        "load": args.load,
        "capacity_def": args.capacity_def,
        "aging_s": args.aging_s,
        "per_seed": per_seed,
        "summary": {k: _stat([r[k] for r in per_seed]) for k in keys},
    }


def capacities(args) -> dict:
    """Both capacities per seed: the throughput one measured, the SLO one as tabled."""
    per_seed = []
    for seed in args.seed_list:
        row = {"seed": seed, "throughput_rps": throughput_capacity(args, seed)}
        slo = CAPACITY_BY_SEED.get(args.profile, {}).get(seed)
        if slo is not None:
            row["slo_rps"] = slo
            row["slo_over_throughput"] = slo / row["throughput_rps"]
        per_seed.append(row)
        print(json.dumps(row), file=sys.stderr)
    keys = [k for k in per_seed[0] if k != "seed"]
    return {
        "experiment": "capacity",
        "max_num_tokens": args.max_num_tokens,
        "overload_rps": OVERLOAD_RPS,
        "per_seed": per_seed,
        "summary": {k: _stat([r[k] for r in per_seed]) for k in keys},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("experiment", choices=("fairness", "sjf", "capacity"))
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
    p.add_argument(
        "--capacity-def",
        choices=CAPACITY_DEFS,
        default="slo",
        help="what --load is a fraction of: slo (highest rate within the TTFT/TPOT SLO) "
        "or throughput (the completion rate while saturated, i.e. utilisation)",
    )
    p.add_argument(
        "--sjf-lengths",
        choices=("predicted", "true"),
        default="predicted",
        help="sjf's output lengths: predicted (what the server does) or true (the "
        "trace's, benchmark-only: sjf with a perfect prediction)",
    )
    p.add_argument("--policy", default="adaptive", help="controller (batch_policy)")
    p.add_argument("--profile", default=PROFILE, help=f"simulator profile (default {PROFILE})")
    p.add_argument(
        "--max-num-tokens",
        type=int,
        default=DEFAULT_MAX_NUM_TOKENS,
        metavar="N",
        help="the simulated engine's max_num_tokens (most prompt + decode tokens in one "
        "iteration; longer prompts are prefilled in chunks), for every run including the "
        f"capacity run (default {DEFAULT_MAX_NUM_TOKENS}, the engine's)",
    )
    p.add_argument("--aging-s", type=float, default=10.0, help="queue aging bound, seconds")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON")
    args = p.parse_args(argv)
    args.seed_list = _seeds(args.seeds)
    try:
        engine_kw(args)
    except ConfigError as exc:
        p.error(f"--max-num-tokens: {exc}")
    args.requests = args.requests or 1000
    if args.experiment == "capacity":
        result = capacities(args)
    elif args.experiment == "fairness":
        args.load = args.load or 0.9
        result = fairness(args)
    else:
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

"""`dynabatch fleet`: N simulated replicas behind a router, capacity under SLOs.

    dynabatch fleet --workload conv --replicas 1,2,4,8 --router gateway --seeds 5
    dynabatch fleet --workload bursty --replicas 4 --rate 12   # one run at 12 req/s

Each replica is its own ServingCore + controller + simulated executor; all share one
virtual clock (sim.py). Capacity rows are per seed; the summary pairs them by seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..bench.capacity import default_slo
from ..bench.metrics import Slo
from ..bench.report import write_json
from .capacity import FleetCapacityJob, run_fleet_capacity
from .routers import ROUTERS
from .scrape import ScrapeConfig
from .sim import FleetConfig, run_fleet
from .summary import format_summary, summarize_capacity
from .workloads import WORKLOADS, fleet_workload, length_mix

DEFAULT_PROFILE = "llama-2-13b-a100-40gb"


def _csv(kind):
    return lambda text: [kind(v) for v in text.split(",") if v]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fleet",
        help="N simulated replicas behind a router: capacity under SLOs per router and N",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workload", type=_csv(str), default=["conv"], help=f"comma list of {WORKLOADS}"
    )
    p.add_argument("--replicas", type=_csv(int), default=[1, 2, 4, 8], help="comma list of N")
    p.add_argument(
        "--router", type=_csv(str), default=list(ROUTERS), help=f"comma list of {ROUTERS}"
    )
    p.add_argument("--profile", default=DEFAULT_PROFILE, help="simulator profile of every replica")
    p.add_argument("--policy", default="adaptive", help="each replica's batch policy")
    p.add_argument("--seeds", type=int, default=5, help="paired seeds (capacity searches)")
    p.add_argument("--requests-per-replica", type=int, default=200)
    p.add_argument("--rate", type=float, help="run once at this fleet-wide rate, no search")
    p.add_argument("--seed", type=int, default=0, help="the workload seed of a --rate run")
    p.add_argument("--scrape-interval", type=float, default=ScrapeConfig.interval_s)
    p.add_argument("--staleness", type=float, default=ScrapeConfig.staleness_s)
    p.add_argument(
        "--metrics-interval",
        type=float,
        default=ScrapeConfig.metrics_interval_s,
        help="s between a pod's gauge refreshes (dynabatch's metrics_interval_ms); "
        "0 = the picker reads the state live",
    )
    p.add_argument(
        "--aligned-scrapes",
        action="store_true",
        help="every pod's gauges and picker reads tick together (default: each pod on "
        "its own phase, as the picker's per-pod tickers are)",
    )
    p.add_argument("--slo-ttft", type=float, help="P99 TTFT SLO in s (default: MLPerf's)")
    p.add_argument("--slo-tpot", type=float, help="P99 TPOT SLO in s (default: MLPerf's)")
    p.add_argument("--rel-tol", type=float, default=0.03)
    p.add_argument("--jobs", type=int, default=1, help="capacity searches in parallel")
    p.add_argument(
        "--label",
        default="",
        help="suffix for the router name in the rows (e.g. -5ms-scrape for a variant)",
    )
    p.add_argument(
        "--baseline",
        default="round-robin",
        help="the router every other is divided by, seed by seed, in the summary",
    )
    p.add_argument("--json", metavar="PATH", help="write per-seed rows and the summary")
    p.add_argument("--plot", metavar="PNG", help="capacity against N per router")
    p.add_argument(
        "--from-json",
        type=_csv(str),
        metavar="PATHS",
        help="no runs: summarise (and --plot, --json: merge) the per-seed rows of earlier "
        "--json files",
    )
    p.set_defaults(func=cmd_fleet)


def _configs(args, slo: Slo):
    from ..bench.runner import PolicySpec

    spec = PolicySpec(args.policy, args.policy)
    scrape = ScrapeConfig(
        args.scrape_interval,
        args.staleness,
        metrics_interval_s=args.metrics_interval,
        spread_phases=not args.aligned_scrapes,
    )
    for wl in args.workload:
        for router in args.router:
            for n in args.replicas:
                yield (
                    wl,
                    FleetConfig(n, router, args.profile, slo, spec, scrape=scrape, seed=args.seed),
                )


def cmd_fleet(args) -> int:
    bad = [r for r in args.router if r not in ROUTERS] + [
        w for w in args.workload if w not in WORKLOADS
    ]
    if bad or any(n < 1 for n in args.replicas):
        print(f"error: unknown router/workload or N < 1: {bad or args.replicas}", file=sys.stderr)
        return 2
    base = default_slo(args.profile)
    slo = Slo(args.slo_ttft or base.ttft_s, args.slo_tpot or base.tpot_s)
    if args.from_json:
        from ..bench.report import read_json

        rows = []
        for path in args.from_json:
            try:
                rows += [r for r in read_json(path) if "capacity_rps" in r]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(
                    f"error: --from-json {path}: not a fleet --json file ({exc})", file=sys.stderr
                )
                return 2
        if args.json:  # the merged per-seed rows, e.g. the figure's data file
            write_json(rows, args.json, {"command": "fleet", "argv": sys.argv[1:]})
        return _report(rows, args)
    if args.rate is not None:
        rows = []
        for wl, cfg in _configs(args, slo):
            n = args.requests_per_replica * cfg.replicas
            rows.append(
                run_fleet(fleet_workload(length_mix(wl), n, args.rate, seed=args.seed), cfg)
            )
            r = rows[-1]
            print(
                f"{wl} {cfg.router} N={cfg.replicas}: ttft p50 {r['ttft_p50_s']:.3f} s, "
                f"p99 {r['ttft_p99_s']:.3f} s, "
                f"tpot p99 {r['tpot_p99_s'] * 1000:.1f} ms, routed {r['routed_per_replica']}, "
                f"same replica in bursts {r['same_replica_in_burst']:.2f}, "
                f"excess in flight {r['excess_in_flight_mean']:.2f}"
                + (
                    f", picks with equal queues {r['equal_queue_share']:.2f}"
                    if "equal_queue_share" in r
                    else ""
                )
            )
        if args.json:
            write_json(rows, args.json, {"command": "fleet", "argv": sys.argv[1:]})
        return 0
    jobs = [
        FleetCapacityJob(wl, cfg, args.requests_per_replica, seed, rel_tol=args.rel_tol)
        for wl, cfg in _configs(args, slo)
        for seed in range(args.seeds)
    ]
    rows = _run_jobs(jobs, args.jobs)
    for row in rows:
        row["router"] += args.label
    if args.json:
        write_json(rows, args.json, {"command": "fleet", "argv": sys.argv[1:]})
    return _report(rows, args)


def _report(rows: list[dict], args) -> int:
    summary = summarize_capacity(rows, args.baseline)
    print(format_summary(summary, args.baseline))
    if args.json and not args.from_json:
        Path(args.json).with_suffix(".summary.json").write_text(
            json.dumps(summary, indent=1) + "\n"
        )
    if args.plot:
        from .plot import plot_scaling

        plot_scaling(summary, args.plot)
    return 0


def _run_jobs(jobs: list[FleetCapacityJob], workers: int) -> list[dict]:
    done = 0

    def report(row: dict) -> dict:
        nonlocal done
        done += 1
        print(
            f"[fleet {done}/{len(jobs)}] {row['workload']} {row['router']} N={row['replicas']} "
            f"seed {row['seed']}: {row['capacity_rps']:.2f} req/s",
            file=sys.stderr,
        )
        return row

    if workers <= 1 or len(jobs) == 1:
        return [report(run_fleet_capacity(j)) for j in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return [report(row) for row in pool.map(run_fleet_capacity, jobs)]

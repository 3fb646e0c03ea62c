"""`dynabatch bench` and `dynabatch capacity`: virtual-clock comparisons of policies."""

from __future__ import annotations

import argparse
import os
import sys

from .admission_args import add_queue_args
from .capacity_runner import DEFAULT_REL_TOL, DEFAULT_REQUESTS, parse_limits, parse_seeds
from .capacity_stats import DENSE_LIMITS
from .matrix import DEFAULT_PROFILE, build_workloads, run_matrix, slo_for
from .policy_options import add_policy_param_arg
from .report import CAPACITY_COLUMNS, format_table, write_csv, write_json
from .workload import DEFAULT_MAX_NEW_TOKENS, WorkloadError

__all__ = ["register", "build_workloads", "run_matrix", "slo_for", "CAPACITY_COLUMNS"]


def _workload_args(p: argparse.ArgumentParser, trace_help: str) -> None:
    g = p.add_argument_group("workload")
    g.add_argument(
        "--trace", action="append", metavar="PATH", help=trace_help + " (repeat for several)"
    )
    g.add_argument(
        "--synthetic",
        metavar="N:RATE",
        help="synthetic workload instead of a trace: N requests at RATE req/s",
    )
    g.add_argument(
        "--arrival",
        choices=("poisson", "gamma"),
        default="poisson",
        help="synthetic arrivals (default poisson)",
    )
    g.add_argument("--cv", type=float, default=1.0, help="gamma arrivals: coefficient of variation")
    g.add_argument(
        "--prompt-median", type=float, default=512, help="synthetic prompt length median"
    )
    g.add_argument(
        "--output-median", type=float, default=128, help="synthetic output length median"
    )
    g.add_argument("--length-sigma", type=float, default=1.0, help="synthetic lognormal sigma")
    g.add_argument(
        "--max-len", type=int, default=8192, help="synthetic lengths are clipped to this"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--rate-scale",
        type=float,
        default=1.0,
        help="multiply the trace's arrival rate (2 = twice as fast)",
    )
    g.add_argument("--first-n", type=int, help="keep the first N requests")
    g.add_argument(
        "--window-s", type=float, help="keep arrivals in the first S seconds (rescaled clock)"
    )
    g.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help="requested max new tokens of every request (the client's cap; the "
        "trace's GeneratedTokens is the hidden true length)",
    )


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        action="append",
        metavar="NAME",
        help=f"simulator profile (repeat for several; default {DEFAULT_PROFILE})",
    )
    p.add_argument(
        "--policies", help="comma-separated policy labels or controller names (default all)"
    )
    p.add_argument(
        "--slo-ttft", type=float, help="TTFT SLO in seconds (default MLPerf server by model size)"
    )
    p.add_argument(
        "--slo-tpot", type=float, help="TPOT SLO in seconds (default MLPerf server by model size)"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="parallel processes (default: 2 or the CPU count)",
    )
    p.add_argument("--json", metavar="PATH", help="write the rows as JSON")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="replay a workload against every batch policy (virtual clock)",
        description=__doc__,
    )
    _workload_args(p, "Azure-format trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens)")
    _common_args(p)
    p.add_argument("--csv", metavar="PATH", help="write the rows as CSV")
    add_queue_args(p)
    p.add_argument("--plot", metavar="DIR", help="write PNG figures to DIR")
    p.add_argument(
        "--report",
        action="store_true",
        help="the default report: both Azure traces x two profiles x all policies "
        "(see docs/BENCHMARKS.md); writes JSON/CSV/markdown/PNG under --out",
    )
    p.add_argument("--out", default="out/bench", help="--report: output directory")
    p.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="closed loop: N clients, each sends its next request when its last one "
        "finishes (arrival times ignored)",
    )
    p.add_argument(
        "--engine-opt",
        action="append",
        metavar="KEY=VALUE",
        help="simulated-engine parameter, repeatable (max_num_tokens, tokens_per_block, "
        "kv_cache_free_gpu_mem_fraction, max_tokens_in_paged_kv_cache, enable_chunked_context, "
        "context_blocks, seed; config.pbtxt names work too)",
    )
    p.add_argument(
        "--engine",
        choices=("simulated", "trtllm_executor", "trtllm_llmapi"),
        default="simulated",
        help="engine adapter the workload runs through (TensorRT-LLM ones need --standin)",
    )
    p.add_argument(
        "--standin",
        action="store_true",
        help="run a TensorRT-LLM engine on the repository's stand-in (tests/stand_in), "
        "driven by the simulated executor, when TensorRT-LLM is absent",
    )
    p.set_defaults(func=cmd_bench)

    c = subparsers.add_parser(
        "capacity", help="highest Poisson rate meeting the P99 SLOs, per policy"
    )
    _workload_args(c, "trace whose (prompt, output) length mix the Poisson arrivals draw from")
    _common_args(c)
    c.add_argument(
        "--requests",
        type=int,
        default=DEFAULT_REQUESTS,
        help=f"requests per probe (default {DEFAULT_REQUESTS})",
    )
    c.add_argument(
        "--seeds",
        default="0-4",
        help="paired seeds, A-B or a comma list (default 0-4): every policy sees the same "
        "arrivals per seed; the table shows the median and min-max",
    )
    c.add_argument("--start-rate", type=float, default=1.0, help="first probed rate (req/s)")
    c.add_argument(
        "--rel-tol",
        type=float,
        default=DEFAULT_REL_TOL,
        help=f"bisection stops within this fraction (default {DEFAULT_REL_TOL})",
    )
    c.add_argument("--max-probes", type=int, default=14, help="benchmark runs per search at most")
    c.add_argument(
        "--static-limits",
        metavar="N,N,...",
        help="the static limits in the line-up, under both capacity policies (default "
        "8,12,16,32,64,128; e.g. the dense sweep " + ",".join(map(str, DENSE_LIMITS)) + ")",
    )
    add_policy_param_arg(c)
    c.set_defaults(func=cmd_capacity)

    from .grid import register as register_grid

    register_grid(subparsers)


def check_options(args) -> None:
    """Raise ValueError naming the first bad option, before any work starts."""
    from ..engines.simulated.profiles import get_profile
    from .policy_options import apply_policy_params, parse_policy_params
    from .suite import policy_lineup, select

    for name in ("slo_ttft", "slo_tpot"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0 seconds, got {value}")
    for prof in args.profile or [DEFAULT_PROFILE]:
        try:
            get_profile(prof)
        except (KeyError, ValueError) as exc:
            msg = exc.args[0] if exc.args else exc
            raise ValueError(f"--profile: {msg}") from None
        limits = getattr(args, "static_limits", None)
        lineup = policy_lineup(prof, parse_limits(limits)) if limits else policy_lineup(prof)
        specs = select(lineup, args.policies.split(",") if args.policies else None)
        apply_policy_params(specs, parse_policy_params(getattr(args, "policy_param", None)))
    if getattr(args, "jobs", 1) < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if getattr(args, "seeds", None) is not None:
        parse_seeds(args.seeds)
    if getattr(args, "static_limits", None):
        parse_limits(args.static_limits)
    for name, least in (("requests", 1), ("max_probes", 2)):
        value = getattr(args, name, None)
        if value is not None and value < least:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {least}, got {value}")
    for name in ("start_rate", "rel_tol", "cv"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def _options_or_error(args):
    """(workloads, None) or (None, exit code) after a one-line error on stderr."""
    try:
        check_options(args)
        return build_workloads(args), None
    except (WorkloadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 2


def cmd_bench(args) -> int:
    if args.report:
        from .report_preset import run_report

        return run_report(args)
    workloads, rc = _options_or_error(args)
    if workloads is None:
        return rc
    if args.engine != "simulated" and not args.standin:
        print(
            f"error: --engine {args.engine} runs TensorRT-LLM in real time only; add "
            "--standin to benchmark its adapter on the repository's stand-in",
            file=sys.stderr,
        )
        return 2
    if (args.concurrency or args.engine_opt) and args.engine != "simulated":
        print("error: --concurrency and --engine-opt run on --engine simulated", file=sys.stderr)
        return 2
    if args.concurrency or args.engine_opt:
        from .closed_loop import run_bench

        return run_bench(args, workloads)
    profiles = args.profile or [DEFAULT_PROFILE]
    rows, _ = run_matrix(workloads, profiles, args, plot_dir=args.plot)
    print(format_table(rows))
    meta = {"command": "bench", "argv": sys.argv[1:]}
    if args.json:
        write_json(rows, args.json, meta)
    if args.csv:
        write_csv(rows, args.csv)
    return 0


def cmd_capacity(args) -> int:
    from .capacity_runner import capacity_table

    workloads, rc = _options_or_error(args)
    if workloads is None:
        return rc
    rows = capacity_table(workloads, args.profile or [DEFAULT_PROFILE], args)
    print(format_table(rows, CAPACITY_COLUMNS))
    if args.json:
        write_json(rows, args.json, {"command": "capacity", "argv": sys.argv[1:]})
    return 0

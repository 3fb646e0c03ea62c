"""`dynabatch bench` and `dynabatch capacity`: virtual-clock comparisons of policies."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .capacity import default_slo
from .metrics import Slo
from .report import Progress, format_table, write_csv, write_json
from .workload import DEFAULT_MAX_NEW_TOKENS, Workload, WorkloadError, load_trace, synthetic

DEFAULT_PROFILE = "llama-2-13b-a100-40gb"


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
    c.add_argument("--requests", type=int, default=600, help="requests per probe (default 600)")
    c.add_argument("--start-rate", type=float, default=1.0, help="first probed rate (req/s)")
    c.add_argument(
        "--rel-tol", type=float, default=0.05, help="bisection stops within this fraction"
    )
    c.add_argument("--max-probes", type=int, default=10, help="benchmark runs per policy at most")
    c.set_defaults(func=cmd_capacity)


def build_workloads(args) -> list[Workload]:
    if args.synthetic:
        try:
            n, rate = args.synthetic.split(":")
            n, rate = int(n), float(rate)
        except ValueError:
            raise WorkloadError(f"--synthetic expects N:RATE, got {args.synthetic!r}") from None
        return [
            synthetic(
                n,
                rate,
                arrival=args.arrival,
                cv=args.cv,
                prompt_median=args.prompt_median,
                output_median=args.output_median,
                prompt_sigma=args.length_sigma,
                output_sigma=args.length_sigma,
                seed=args.seed,
                max_new_tokens=args.max_new_tokens,
                max_len=args.max_len,
            )
        ]
    if not args.trace:
        raise WorkloadError("give --trace PATH or --synthetic N:RATE")
    return [
        load_trace(
            t,
            rate_scale=args.rate_scale,
            first_n=args.first_n,
            window_s=args.window_s,
            max_new_tokens=args.max_new_tokens,
        )
        for t in args.trace
    ]


def slo_for(args, profile: str) -> Slo:
    base = default_slo(profile)
    return Slo(
        args.slo_ttft if args.slo_ttft is not None else base.ttft_s,
        args.slo_tpot if args.slo_tpot is not None else base.tpot_s,
    )


def cmd_bench(args) -> int:
    if args.report:
        from .report_preset import run_report

        return run_report(args)
    try:
        workloads = build_workloads(args)
    except WorkloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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


def run_matrix(workloads, profiles, args, plot_dir=None, label: str = "bench"):
    """Run every (workload, profile, policy); return rows (with ratios) and headlines."""
    from .suite import Job, add_ratios, policy_lineup, run_jobs, select

    jobs = []
    for wl in workloads:
        for prof in profiles:
            specs = select(
                policy_lineup(prof), (args.policies or "").split(",") if args.policies else None
            )
            engine = getattr(args, "engine", "simulated")
            engine_kw = (
                (("engine", engine), ("standin", args.standin)) if engine != "simulated" else ()
            )
            jobs += [Job(wl, prof, s, slo_for(args, prof), engine_kw=engine_kw) for s in specs]
    progress = Progress(len(jobs), label)
    t0 = time.monotonic()
    results = run_jobs(
        jobs,
        workers=max(1, args.jobs),
        on_done=lambda job, row: progress.advance(f"{job.label} {row['output_tok_s']:.0f} tok/s"),
    )
    rows, headlines = [], []
    for wl in workloads:
        for prof in profiles:
            group = [
                (job, res)
                for job, res in zip(jobs, results)
                if job.workload is wl and job.profile == prof
            ]
            grows = [res[0] for _, res in group]
            head = {"workload": wl.name, "profile": prof, **add_ratios(grows)}
            headlines.append(head)
            rows += grows
            if plot_dir:
                _plots(
                    grows,
                    {job.spec.name: res[1] for job, res in group},
                    head,
                    plot_dir,
                    f"{wl.name}-{prof}",
                )
    print(f"{label}: {len(jobs)} runs in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return rows, headlines


def _plots(rows, timelines, head, plot_dir, prefix) -> None:
    from .plots import write_figures
    from .suite import DEFAULT_POLICY

    keep = {
        k: timelines[k] for k in (DEFAULT_POLICY, head.get("best_static")) if k and timelines.get(k)
    }
    write_figures(rows, keep, plot_dir, prefix)


def cmd_capacity(args) -> int:
    from .capacity_runner import capacity_table

    try:
        workloads = build_workloads(args)
    except WorkloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = capacity_table(workloads, args.profile or [DEFAULT_PROFILE], args)
    from .report import format_table as fmt

    print(fmt(rows, CAPACITY_COLUMNS))
    if args.json:
        write_json(rows, args.json, {"command": "capacity", "argv": sys.argv[1:]})
    return 0


CAPACITY_COLUMNS = (
    ("policy", "policy", "{}"),
    ("workload", "lengths from", "{}"),
    ("capacity_rps", "capacity req/s", "{:.2f}"),
    ("vs_trtllm_default", "x trtllm_default", "{:.2f}"),
    ("first_failing_rps", "fails at", "{:.2f}"),
    ("probes", "runs", "{}"),
    ("slo_ttft_s", "TTFT SLO", "{:g}"),
    ("slo_tpot_s", "TPOT SLO", "{:g}"),
)

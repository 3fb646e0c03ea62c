"""Library side of `dynabatch bench`: build workloads and SLOs from options, run every
(workload, profile, policy) and derive the ratios. The CLI (commands.py) only parses."""

from __future__ import annotations

import sys
import time

from .admission_args import queue_order_from_args
from .capacity import default_slo
from .metrics import Slo
from .report import Progress
from .workload import Workload, WorkloadError, load_trace, synthetic

DEFAULT_PROFILE = "llama-2-13b-a100-40gb"


def build_workloads(args) -> list[Workload]:
    """The workloads named by the bench/capacity workload options."""
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
                max_len=getattr(args, "max_len", 8192),
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
    """--slo-ttft/--slo-tpot where given, else the MLPerf server SLO of the model size."""
    base = default_slo(profile)
    return Slo(
        args.slo_ttft if args.slo_ttft is not None else base.ttft_s,
        args.slo_tpot if args.slo_tpot is not None else base.tpot_s,
    )


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
            order = queue_order_from_args(args)
            jobs += [
                Job(wl, prof, s, slo_for(args, prof), engine_kw=engine_kw, queue_order=order)
                for s in specs
            ]
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

"""`dynabatch grid`: capacity under SLOs over profiles x workloads x SLO levels.

Per cell, every policy's capacity (highest arrival rate with P99 TTFT and TPOT within
the SLO) over paired seeds; "best static" is the best of a dense sweep of static
limits under both capacity policies. Writes grid.json (every policy row), grid.md (one
line per cell: adaptive against each baseline, with per-seed win/tie/loss) and the
figures (grid_plots.py). `--slice ci` is the small slice the tests run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .capacity_runner import (
    DEFAULT_REL_TOL,
    DEFAULT_REQUESTS,
    CapacityJob,
    parse_seeds,
    run_capacity_jobs,
)
from .capacity_stats import BASELINES, DENSE_LIMITS, cell_key, compare_cell, summarize_seeds
from .grid_cells import SLO_LEVELS, WORKLOADS, grid_profiles, slo_level
from .policy_options import (
    PolicyParams,
    add_policy_param_arg,
    apply_policy_params,
    parse_policy_params,
)
from .report import write_json
from .suite import DEFAULT_POLICY, DYNAMIC, policy_lineup, select


@dataclass(frozen=True)
class GridSlice:
    profiles: tuple[str, ...]
    workloads: tuple[str, ...]
    slo_levels: tuple[str, ...]
    seeds: tuple[int, ...]
    requests: int
    rel_tol: float
    static_limits: tuple[int, ...]
    policies: tuple[str, ...] | None  # None: the whole line-up (+ the static sweep)
    policy_params: PolicyParams = ()  # --policy-param, to the policies that read each


# What a cell compares: every static configuration ("static": TensorRT-LLM's and vLLM's
# defaults and the sweep of limits under both capacity policies), the dynamic baselines
# the issue names, and adaptive. (paper_memory, the memory half of `paper`, is left out
# of the default; `--policies` still runs it.)
GRID_POLICIES = ("static", "trtllm_tuner", "sglang_ratio", "paper", "paper_sla", "adaptive")

# Sized for a test: one profile, one mix, two SLO levels (two points on the TPOT axis),
# two seeds, small probes, a coarse tolerance, three limits of the sweep; seconds, not
# minutes.
CI_SLICE = GridSlice(
    profiles=("llama-3-8b-h100",),
    workloads=("short-long",),
    slo_levels=("interactive", "tight"),
    seeds=(0, 1),
    requests=80,
    rel_tol=0.15,
    static_limits=(8, 64),
    policies=GRID_POLICIES,
)


def full_slice() -> GridSlice:
    return GridSlice(
        profiles=grid_profiles(),
        workloads=tuple(WORKLOADS),
        slo_levels=SLO_LEVELS,
        seeds=(0, 1, 2, 3, 4),
        requests=DEFAULT_REQUESTS,
        rel_tol=DEFAULT_REL_TOL,
        static_limits=DENSE_LIMITS,
        policies=GRID_POLICIES,
    )


def grid_jobs(sl: GridSlice, start_rate: float, max_probes: int) -> list[CapacityJob]:
    jobs = []
    for prof in sl.profiles:
        lineup = [s for s in policy_lineup(prof, sl.static_limits) if s.policy != "oracle"]
        specs = apply_policy_params(select(lineup, sl.policies), sl.policy_params)
        for wname in sl.workloads:
            gw = WORKLOADS[wname]
            lengths = gw.lengths()
            for level in sl.slo_levels:
                slo = slo_level(level, prof)
                jobs += [
                    CapacityJob(
                        lengths,
                        prof,
                        spec,
                        slo,
                        sl.requests,
                        start_rate,
                        sl.rel_tol,
                        max_probes,
                        sl.seeds,
                        gw.arrival,
                        gw.cv,
                    )
                    for spec in specs
                ]
    return jobs


def cell_lines(rows: list[dict]) -> list[dict]:
    """One line per cell: adaptive's median capacity against every baseline present."""
    out = []
    for key in dict.fromkeys(cell_key(r) for r in rows):
        cell = {r["policy"]: r for r in rows if cell_key(r) == key}
        ours = cell.get(DEFAULT_POLICY)
        if ours is None:
            continue
        line = {
            "profile": ours["profile"],
            "workload": ours["workload"],
            "slo_level": ours.get("slo_level"),
            "slo_ttft_s": ours["slo_ttft_s"],
            "slo_tpot_s": ours["slo_tpot_s"],
            "adaptive_rps": ours["capacity_rps"],
            "adaptive_min_rps": ours["capacity_min_rps"],
            "adaptive_max_rps": ours["capacity_max_rps"],
            "best_static": ours["best_static"],
            "best_static_rps": cell[ours["best_static"]]["capacity_rps"]
            if ours["best_static"]
            else None,
        }
        for b in BASELINES:
            if f"vs_{b}" in ours:
                line[f"vs_{b}"] = ours[f"vs_{b}"]
                line[f"vs_{b}_min"] = ours[f"vs_{b}_min"]
                line[f"wtl_{b}"] = ours[f"wtl_{b}"]
        dyn = [b for b in BASELINES if b in DYNAMIC and f"vs_{b}" in ours]
        if dyn:
            worst = min(dyn, key=lambda b: ours[f"vs_{b}"])
            line["worst_dynamic"], line["vs_worst_dynamic"] = worst, ours[f"vs_{worst}"]
        out.append(line)
    return out


CELL_COLUMNS = (
    ("profile", "profile", "{}"),
    ("workload", "workload", "{}"),
    ("slo_level", "SLO", "{}"),
    ("slo_tpot_s", "TPOT SLO", "{:g}"),
    ("adaptive_rps", "adaptive req/s", "{:.3g}"),
    ("adaptive_min_rps", "min", "{:.3g}"),
    ("adaptive_max_rps", "max", "{:.3g}"),
    ("best_static", "best static", "{}"),
    ("vs_best_static", "x best static", "{:.2f}"),
    ("vs_best_static_min", "worst seed", "{:.2f}"),
    ("wtl_best_static", "W/T/L", "{}"),
    ("vs_trtllm_default", "x trtllm_default", "{:.2f}"),
    ("wtl_trtllm_default", "W/T/L", "{}"),
    ("worst_dynamic", "closest dynamic", "{}"),
    ("vs_worst_dynamic", "x it", "{:.2f}"),
)


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the worker processes):
    the grid's cost in core-seconds, whatever else shares the machine."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_grid(sl: GridSlice, *, jobs: int, out: Path, start_rate: float, max_probes: int):
    t0, cpu0 = time.monotonic(), _cpu_s()
    cap_jobs = grid_jobs(sl, start_rate, max_probes)
    level_of = {}
    for prof in sl.profiles:
        for level in sl.slo_levels:
            slo = slo_level(level, prof)
            level_of[(prof, slo.ttft_s, slo.tpot_s)] = level
    seed_rows = run_capacity_jobs(cap_jobs, jobs, "grid")
    for r in seed_rows:
        r["slo_level"] = level_of[(r["profile"], r["slo_ttft_s"], r["slo_tpot_s"])]
    rows = summarize_seeds(seed_rows, tolerance=sl.rel_tol)
    elapsed, cpu = time.monotonic() - t0, _cpu_s() - cpu0
    meta = {
        "command": "grid",
        "argv": sys.argv[1:],
        "slice": {k: v for k, v in sl.__dict__.items()},
        "wall_s": round(elapsed, 1),
        "cpu_s": round(cpu, 1),
        "probes": sum(r["probes"] for r in seed_rows),
        "runs": sum(r.get("probes_run", r["probes"]) for r in seed_rows),
    }
    lines = write_grid(rows, out, meta)
    print(
        f"grid: {len(cap_jobs)} searches, {meta['probes']} probes ({meta['runs']} run, the "
        f"rest reused) in {elapsed:.0f} s wall, {cpu:.0f} s CPU; figures under {out}/",
        file=sys.stderr,
    )
    return rows, lines


def write_grid(rows: list[dict], out: Path, meta: dict) -> list[dict]:
    """grid.json (rows + one line per cell), grid.md and the figures."""
    from .grid_plots import write_grid_figures
    from .report import format_markdown

    lines = cell_lines(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_json(rows, out / "grid.json", {**meta, "cells": lines})
    write_grid_figures(rows, lines, out)
    md = format_markdown(lines, CELL_COLUMNS)
    (out / "grid.md").write_text(md + "\n")
    (out / "grid-policies.md").write_text(policy_tables(rows))
    print(md)
    return lines


def policy_tables(rows: list[dict]) -> str:
    """Per cell, every policy: median [min-max], per seed, and its ratio to the best
    static (worst seed) with W/T/L; best first."""
    parts = []
    for key in dict.fromkeys(cell_key(r) for r in rows):
        cell = sorted((r for r in rows if cell_key(r) == key), key=lambda r: -r["capacity_rps"])
        first = cell[0]
        parts.append(
            f"#### {first['profile']}, {first['workload']}, {first.get('slo_level')} "
            f"({first['slo_ttft_s']:g} s / {first['slo_tpot_s'] * 1000:g} ms)\n\n"
            "| policy | median [min-max] req/s | per seed | x best static (worst seed), "
            "W/T/L |\n|---|---|---|---|"
        )
        for r in cell:
            seeds = " ".join(f"{c:.3g}" for c in r["capacity_by_seed"])
            vs = (
                f"{r['vs_best_static']:.2f} ({r['vs_best_static_min']:.2f}), {r['wtl_best_static']}"
                if "vs_best_static" in r
                else ""
            )
            parts.append(
                f"| `{r['policy']}` | {r['capacity_rps']:.3g} [{r['capacity_min_rps']:.3g}-"
                f"{r['capacity_max_rps']:.3g}] | {seeds} | {vs} |"
            )
        parts.append("")
    return "\n".join(parts) + "\n"


_COMPARISONS = ("vs_", "wtl_", "best_static")


def rebuild_grid(paths: Sequence[Path], out: Path) -> list[dict]:
    """One grid from the rows of several grid.json files: a (cell, policy) row of a later
    file replaces an earlier one (re-run one policy after a change, keep the rest), and
    every comparison is made again over the rows that remain."""
    from .report import read_json

    merged: dict[tuple, dict] = {}
    metas = []
    for path in paths:
        doc = json.loads(Path(path).read_text())
        metas.append({"file": str(path), **{k: v for k, v in doc["meta"].items() if k != "cells"}})
        for r in read_json(path):
            row = {k: v for k, v in r.items() if not k.startswith(_COMPARISONS)}
            merged[(*cell_key(row), row["policy"])] = row
    rows = list(merged.values())
    tolerance = min(r["rel_tol"] for r in rows)
    for cell in dict.fromkeys(cell_key(r) for r in rows):
        compare_cell([r for r in rows if cell_key(r) == cell], tolerance)
    return write_grid(rows, out, {"command": "grid --rebuild", "sources": metas})


def _csv(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def register(subparsers) -> None:
    g = subparsers.add_parser(
        "grid",
        help="capacity under SLOs over profiles x workloads x SLO levels, paired seeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument("--slice", choices=("ci", "full"), default="full", help="preset (default full)")
    g.add_argument("--profiles", help="comma-separated profiles (default: the preset's)")
    g.add_argument("--workloads", help=f"comma-separated, of {', '.join(WORKLOADS)}")
    g.add_argument("--slo-levels", help=f"comma-separated, of {', '.join(SLO_LEVELS)}")
    g.add_argument("--seeds", help="paired seeds, A-B or a comma list")
    g.add_argument("--requests", type=int, help=f"requests per probe ({DEFAULT_REQUESTS})")
    g.add_argument("--rel-tol", type=float, help=f"bisection tolerance ({DEFAULT_REL_TOL})")
    g.add_argument("--static-limits", help="static sweep, N,N,... (both capacity policies)")
    g.add_argument(
        "--policies",
        help="comma-separated policy labels or controller names "
        f"(default {','.join(GRID_POLICIES)})",
    )
    g.add_argument("--start-rate", type=float, default=1.0, help="first probed rate (req/s)")
    g.add_argument("--max-probes", type=int, default=14, help="runs per search at most")
    g.add_argument("--jobs", type=int, default=2, help="parallel processes (default 2)")
    g.add_argument("--out", default="out/grid", help="output directory (default out/grid)")
    add_policy_param_arg(g)
    g.add_argument(
        "--rebuild",
        help="run nothing: one grid from these grid.json files (comma-separated; a later "
        "file's row replaces an earlier one's for the same cell and policy)",
    )
    g.set_defaults(func=cmd_grid)


def slice_from_args(args) -> GridSlice:
    """The preset with the given overrides; ValueError naming a bad option."""
    from dataclasses import replace

    from ..engines.simulated.profiles import PROFILES

    sl = CI_SLICE if args.slice == "ci" else full_slice()
    over: dict = {}
    if args.profiles:
        over["profiles"] = _csv(args.profiles)
        bad = [p for p in over["profiles"] if p not in PROFILES]
        if bad:
            raise ValueError(f"--profiles: unknown {', '.join(bad)}; known: {', '.join(PROFILES)}")
    if args.workloads:
        over["workloads"] = _csv(args.workloads)
        bad = [w for w in over["workloads"] if w not in WORKLOADS]
        if bad:
            raise ValueError(
                f"--workloads: unknown {', '.join(bad)}; known: {', '.join(WORKLOADS)}"
            )
    if args.slo_levels:
        over["slo_levels"] = _csv(args.slo_levels)
        bad = [v for v in over["slo_levels"] if v not in SLO_LEVELS]
        if bad:
            raise ValueError(
                f"--slo-levels: unknown {', '.join(bad)}; known: {', '.join(SLO_LEVELS)}"
            )
    if args.seeds:
        over["seeds"] = parse_seeds(args.seeds)
    if args.requests is not None:
        if args.requests < 1:
            raise ValueError(f"--requests must be >= 1, got {args.requests}")
        over["requests"] = args.requests
    if args.rel_tol is not None:
        if not args.rel_tol > 0:
            raise ValueError(f"--rel-tol must be > 0, got {args.rel_tol}")
        over["rel_tol"] = args.rel_tol
    if args.static_limits:
        try:
            over["static_limits"] = tuple(int(v) for v in _csv(args.static_limits))
        except ValueError:
            raise ValueError(
                f"--static-limits expects N,N,..., got {args.static_limits!r}"
            ) from None
    if args.policies:
        over["policies"] = _csv(args.policies)
    over["policy_params"] = parse_policy_params(args.policy_param)
    sl = replace(sl, **over)
    for prof in sl.profiles:  # unknown policy labels and parameters fail here, before any run
        specs = select(policy_lineup(prof, sl.static_limits), sl.policies)
        apply_policy_params(specs, sl.policy_params)
    if args.jobs < 1 or args.max_probes < 2 or not args.start_rate > 0:
        raise ValueError("--jobs >= 1, --max-probes >= 2 and --start-rate > 0 are needed")
    return sl


def cmd_grid(args) -> int:
    if args.rebuild:
        paths = [Path(p) for p in _csv(args.rebuild)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            print(f"error: --rebuild: no such file {', '.join(missing)}", file=sys.stderr)
            return 2
        rebuild_grid(paths, Path(args.out))
        return 0
    try:
        sl = slice_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_grid(
        sl,
        jobs=args.jobs,
        out=Path(args.out),
        start_rate=args.start_rate,
        max_probes=args.max_probes,
    )
    return 0

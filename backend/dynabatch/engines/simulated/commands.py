"""CLI: `dynabatch profiles` and `dynabatch calibrate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .calibration import (
    IFB_FIGURES,
    IFB_GRID_ETA_ATTN,
    IFB_GRID_OVERHEAD_MS,
    TOLERANCE,
    StepGridError,
    calibration_rows,
    fit_ifb,
    fit_profile,
    format_table,
    step_grid_rows,
)
from .latency import LatencyModel
from .profiles import PROFILES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help="list simulator profiles with their KV capacity")
    p.add_argument("--tokens-per-block", type=int, default=64)
    p.add_argument("--kv-fraction", type=float, default=0.9, help="kv_cache_free_gpu_mem_fraction")
    p.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    p.set_defaults(func=cmd_profiles)

    c = sub.add_parser("calibrate", help="compare profiles with published step-time figures")
    c.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    c.add_argument(
        "--fit",
        action="store_true",
        help="refit c0, eta_c, p to the published figures and print them",
    )
    c.add_argument(
        "--no-ifb",
        action="store_true",
        help="skip the in-flight-batching figures (they replay the published runs: ~1 min)",
    )
    c.add_argument(
        "--fit-ifb",
        action="store_true",
        help="grid-search overhead and decode-attention efficiency against the "
        "in-flight-batching figures and print them (several minutes)",
    )
    c.add_argument(
        "--step-grid",
        metavar="FILE",
        help="compare a step-latency grid measured on a GPU (scripts/measure_step_latency.py "
        "--out FILE) with --profile instead of the published figures",
    )
    c.add_argument(
        "--profile",
        default="llama-3.1-8b-bf16-h200",
        choices=sorted(PROFILES),
        metavar="NAME",
        help="profile for --step-grid (default llama-3.1-8b-bf16-h200)",
    )
    c.set_defaults(func=cmd_calibrate)


def cmd_profiles(args: argparse.Namespace) -> int:
    rows = []
    for prof in PROFILES.values():
        blocks = prof.kv_blocks(args.tokens_per_block, args.kv_fraction)
        lat = LatencyModel(prof)
        rows.append(
            dict(
                name=prof.name,
                gpu=prof.gpu.name,
                model=prof.model.name,
                tp=prof.tp,
                kv_blocks=blocks,
                kv_tokens=blocks * args.tokens_per_block,
                decode_step_ms_1=lat.step_s(1, 1024) * 1e3,
                source=prof.source,
            )
        )
    print(
        f"{'profile':<28} {'gpu':<16} {'model':<12} {'tp':>2} {'kv blocks':>10} {'kv tokens':>10} "
        f"{'1-token step (1k ctx) ms':>25}"
    )
    for r in rows:
        print(
            f"{r['name']:<28} {r['gpu']:<16} {r['model']:<12} {r['tp']:>2} {r['kv_blocks']:>10} "
            f"{r['kv_tokens']:>10} {r['decode_step_ms_1']:>25.2f}"
        )
    print(
        f"(tokens_per_block={args.tokens_per_block}, kv_cache_free_gpu_mem_fraction={args.kv_fraction})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def cmd_step_grid(path: str, profile: str, json_out: str | None) -> int:
    try:
        grid = json.loads(Path(path).read_text())
        rows = step_grid_rows(grid, profile)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # StepGridError is a ValueError
        why = exc if isinstance(exc, StepGridError) else f"{type(exc).__name__}: {exc}"
        print(f"dynabatch calibrate: --step-grid {path}: {why}")
        return 2
    if not rows:
        print(f"dynabatch calibrate: --step-grid {path}: no measured point in it")
        return 2
    print(format_table(rows))
    if json_out:
        payload = {"tolerance": TOLERANCE, "rows": [r.as_dict() for r in rows]}
        Path(json_out).write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if all(abs(r.rel_error) <= TOLERANCE for r in rows) else 1


def cmd_calibrate(args: argparse.Namespace) -> int:
    if args.step_grid:
        return cmd_step_grid(args.step_grid, args.profile, args.json)
    if args.fit:
        for prof in PROFILES.values():
            if prof.published_ms:
                f = fit_profile(prof)
                print(
                    f"{prof.name:<28} c0_s={f.c0_s * 1e3:.4f}e-3, eta_c={f.eta_c}, p={f.p}  "
                    f"(eta_bw fixed at {f.eta_bw})"
                )
        print()
    if args.fit_ifb:
        for name in sorted({f.profile for f in IFB_FIGURES}):
            prof, worst = fit_ifb(PROFILES[name], IFB_GRID_OVERHEAD_MS, IFB_GRID_ETA_ATTN)
            print(
                f"{name:<28} overhead_s={prof.overhead_s * 1e3:g}e-3, "
                f"eta_attn={prof.eta_attn}  (worst in-flight-batching error {worst:.1%})"
            )
        print()
    rows = calibration_rows(with_ifb=not args.no_ifb)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"tolerance": TOLERANCE, "rows": [r.as_dict() for r in rows]}, indent=2)
            + "\n"
        )
    return 0 if all(abs(r.rel_error) <= TOLERANCE for r in rows) else 1

"""The policy line-up of a comparison, parallel execution, and the derived ratios.

Baselines use the defaults a user of each system gets:
- TensorRT-LLM default: guaranteed_no_evict at the engine's max batch (256, the
  `max_batch_size` of TensorRT-LLM's default build);
- vLLM default: max_num_seqs 256, or 1024 on GPUs with >= 70 GiB (vLLM's
  usage-context default), allocate on demand with preempt-newest-and-recompute =
  a static limit under max_utilization;
- static limits under both capacity policies; every dynamic policy with its
  default parameters (TPOT target = the run's TPOT SLO), on an engine built with the
  largest batch any default in the line-up gets (`dynamic_max_batch`): a dynamic limit
  is deployed on an engine built with the largest batch it may ever need, and must not
  be capped below what a static configuration runs.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from ..queue_order import QueueOrderConfig
from .metrics import Slo
from .runner import GNE, MAXU, PolicySpec, RunResult, run_policy
from .workload import Workload

ENGINE_MAX_BATCH = 256  # TensorRT-LLM's default build
STATIC_LIMITS = (8, 12, 16, 32, 64, 128)
DYNAMIC = ("sglang_ratio", "trtllm_tuner", "paper_memory", "paper_sla", "paper", "adaptive")
DEFAULT_POLICY = "adaptive"
CAP_SHORT = {GNE: "gne", MAXU: "maxu"}


def vllm_default_seqs(profile: str) -> int:
    from ..engines.simulated.profiles import GIB, get_profile

    return 1024 if get_profile(profile).gpu.mem_bytes >= 70 * GIB else 256


def dynamic_max_batch(profile: str) -> int:
    """The engine build (max_batch_size) the dynamic policies run on: the largest of
    TensorRT-LLM's default build and vLLM's default max_num_seqs on this GPU. On an
    80 GB GPU a 256 build capped `adaptive` at 256 in flight while `vllm_default`, on
    its 1024 build, ran ~340 and passed one more 2 % step (docs/BENCHMARKS.md)."""
    return max(ENGINE_MAX_BATCH, vllm_default_seqs(profile))


def policy_lineup(profile: str, static_limits: Sequence[int] = STATIC_LIMITS) -> list[PolicySpec]:
    specs = [
        PolicySpec(
            "trtllm_default", "static", GNE, (("static_batch_size", ENGINE_MAX_BATCH),), static=True
        )
    ]
    seqs, build = vllm_default_seqs(profile), dynamic_max_batch(profile)
    specs.append(
        PolicySpec(
            "vllm_default",
            "static",
            MAXU,
            (("static_batch_size", seqs),),
            max_batch_size=build,  # the largest build of the line-up is vLLM's
            static=True,
        )
    )
    for cap in (GNE, MAXU):
        for lim in static_limits:
            specs.append(static_spec(lim, cap))
    # trtllm_tuner is TensorRT-LLM's own batch-size tuner: it runs under TensorRT-LLM's
    # default capacity policy. The others allocate on demand, as their systems do.
    specs.append(PolicySpec("trtllm_tuner", "trtllm_tuner", GNE, max_batch_size=build))
    for name in DYNAMIC:
        if name != "trtllm_tuner":
            specs.append(PolicySpec(name, name, MAXU, max_batch_size=build))
    specs.append(PolicySpec("oracle", "oracle", MAXU))
    return specs


def static_spec(limit: int, capacity_policy: str) -> PolicySpec:
    """`static-N/maxu|gne`: a fixed limit N under one capacity policy; the engine's max
    batch grows to N when N exceeds the default build's."""
    return PolicySpec(
        f"static-{limit}/{CAP_SHORT[capacity_policy]}",
        "static",
        capacity_policy,
        (("static_batch_size", limit),),
        max_batch_size=limit if limit > ENGINE_MAX_BATCH else None,
        static=True,
    )


_STATIC_LABEL = re.compile(r"static-(\d+)/(maxu|gne)")


def parse_static(label: str) -> PolicySpec | None:
    """The spec of a `static-N/maxu|gne` label (any N >= 1), None for other labels."""
    m = _STATIC_LABEL.fullmatch(label)
    if not m or int(m.group(1)) < 1:
        return None
    cap = {v: k for k, v in CAP_SHORT.items()}[m.group(2)]
    return static_spec(int(m.group(1)), cap)


def select(specs: Sequence[PolicySpec], names: Iterable[str] | None) -> list[PolicySpec]:
    """Keep the named policies, in line-up order (exact labels, or a controller name to
    keep all its rows); `static-N/maxu|gne` labels outside the line-up are added."""
    if not names:
        return list(specs)
    wanted = [n.strip() for n in names if n.strip()]
    known = {s.name for s in specs} | {s.policy for s in specs}
    extra = {n: parse_static(n) for n in wanted if n not in known}
    unknown = [n for n, spec in extra.items() if spec is None]
    if unknown:
        raise ValueError(
            f"unknown policy {', '.join(unknown)}; known: "
            f"{', '.join(s.name for s in specs)}, or static-N/maxu|gne for any N >= 1"
        )
    picked = [s for s in specs if s.name in wanted or s.policy in wanted]
    return picked + [spec for spec in extra.values() if spec is not None]


@dataclass(frozen=True)
class Job:
    workload: Workload
    profile: str
    spec: PolicySpec
    slo: Slo
    engine_kw: tuple = ()
    controller_params: tuple = ()
    keep_timeline: bool = True
    queue_order: QueueOrderConfig | None = None  # None = the gate's default order

    @property
    def label(self) -> str:
        return f"{self.workload.name}/{self.profile}/{self.spec.name}"


def run_job(job: Job) -> tuple[dict, dict | None]:
    res: RunResult = run_policy(
        job.workload,
        job.profile,
        job.spec,
        slo=job.slo,
        engine_kw=dict(job.engine_kw),
        controller_params=dict(job.controller_params),
        queue_order=job.queue_order,
    )
    return res.row, (res.timeline.as_dict() if job.keep_timeline else None)


def run_jobs(
    jobs: Sequence[Job],
    workers: int = 1,
    on_done: Callable[[Job, dict], None] = lambda job, row: None,
) -> list[tuple[dict, dict | None]]:
    """Run every job, in parallel processes when workers > 1; results in job order."""
    results: list = [None] * len(jobs)
    if workers <= 1 or len(jobs) <= 1:
        for k, job in enumerate(jobs):
            results[k] = run_job(job)
            on_done(job, results[k][0])
        return results
    # Longest first keeps both cores busy to the end (oracle/dynamic runs are longest
    # on saturated traces; a cheap heuristic: the biggest workloads first).
    order = sorted(range(len(jobs)), key=lambda k: -len(jobs[k].workload))
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_job, jobs[k]): k for k in order}
        from concurrent.futures import as_completed

        for fut in as_completed(futures):
            k = futures[fut]
            results[k] = fut.result()
            on_done(jobs[k], results[k][0])
    return results


def add_ratios(rows: list[dict]) -> dict:
    """Each row's throughput as a fraction of the oracle; headline ratios of the group."""
    by = {r["policy"]: r for r in rows}
    oracle = by.get("oracle", {}).get("output_tok_s")
    for r in rows:
        r["vs_oracle"] = r["output_tok_s"] / oracle if oracle else math.nan
    statics = [r for r in rows if r.get("static")]
    best_static = max(statics, key=lambda r: r["output_tok_s"], default=None)
    head = {"best_static": best_static["policy"] if best_static else None}
    ours = by.get(DEFAULT_POLICY)
    if ours:
        for ref in ("trtllm_default", "vllm_default", "paper", "sglang_ratio", "oracle"):
            if ref in by and by[ref]["output_tok_s"]:
                head[f"{DEFAULT_POLICY}_vs_{ref}"] = ours["output_tok_s"] / by[ref]["output_tok_s"]
        if best_static:
            head[f"{DEFAULT_POLICY}_vs_best_static"] = (
                ours["output_tok_s"] / best_static["output_tok_s"]
            )
    return head

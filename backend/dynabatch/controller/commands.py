"""`dynabatch controller-bench`: median cost of one controller update, per policy."""

from __future__ import annotations

import argparse
import random
import statistics
import time

from ..engines.base import KvCapacity
from ..types import ControlInput, FinishReason, IterationStats, RequestState
from . import POLICIES, make_controller


def synthetic_samples(
    count: int, running: int, *, blocks: int = 4096, tpb: int = 16, seed: int = 0
) -> tuple[list[ControlInput], list[RequestState]]:
    """`count` plausible iteration samples over a live map of `running` requests."""
    rng = random.Random(seed)
    live = {
        i: RequestState(
            i,
            rng.randint(16, 2048),
            1024,
            0.0,
            0.0,
            generated=rng.randint(0, 500),
            first_token_time=0.1,
        )
        for i in range(running)
    }
    samples = []
    for it in range(count):
        used = rng.randint(blocks // 2, blocks)
        stats = IterationStats(
            iter=it,
            timestamp=it * 0.03,
            iter_latency_ms=rng.uniform(20.0, 60.0),
            num_active_requests=running,
            num_queued_requests=0,
            num_completed_requests=0,
            max_num_active_requests=256,
            max_num_blocks=blocks,
            free_num_blocks=blocks - used,
            used_num_blocks=used,
            tokens_per_block=tpb,
            num_scheduled_requests=running,
            num_context_requests=1,
            num_gen_requests=max(running - 1, 0),
            num_new_pauses=1 if rng.random() < 0.002 else 0,
        )
        # a backlog, so policies that size admissions by the queue head do that work
        head = [(rng.randint(16, 2048), 1024) for _ in range(4)]
        samples.append(
            ControlInput(
                stats,
                num_waiting=rng.randint(4, 20),
                oldest_wait_s=rng.uniform(0.0, 1.0),
                running=live,
                waiting_head=head,
            )
        )
    finished = [
        RequestState(
            10_000 + i,
            rng.randint(16, 2048),
            1024,
            0.0,
            0.0,
            generated=rng.randint(1, 1024),
            finish_reason=FinishReason.EOS,
        )
        for i in range(64)
    ]
    return samples, finished


def bench_policy(
    policy: str,
    samples: list[ControlInput],
    finished: list[RequestState],
    repeats: int,
    *,
    max_batch_size: int = 256,
    kv: KvCapacity = KvCapacity(4096, 16),  # noqa: B008 (immutable record)
    finish_every: int = 4,
    clock=time.perf_counter,
) -> tuple[float, float, float]:
    """(median, mean, p99) seconds of one update() call, over `repeats` runs.

    A request finishes every `finish_every` updates (on_request_finish, untimed), as
    in steady serving, so policies that redo work when a request leaves pay for it.
    `clock`: wall time by default; time.thread_time counts only this thread's CPU, so
    the OS preempting the process mid-call (milliseconds on a loaded machine, added to
    a 10 us call) does not count."""
    per_call: list[float] = []
    for _ in range(repeats):
        ctl = make_controller(policy, {}, max_batch_size=max_batch_size, kv_capacity=kv)
        for state in finished:  # past the adaptive warm-up, as in steady serving
            ctl.on_request_finish(state)
        update = ctl.update
        for i, sample in enumerate(samples):
            if i % finish_every == 0:
                ctl.on_request_finish(finished[i % len(finished)])
            t0 = clock()
            update(sample)
            per_call.append(clock() - t0)
    per_call.sort()
    return (
        statistics.median(per_call),
        statistics.fmean(per_call),
        per_call[int(0.99 * (len(per_call) - 1))],
    )


def run(args: argparse.Namespace) -> int:
    policies = [args.policy] if args.policy else list(POLICIES)
    samples, finished = synthetic_samples(args.iterations, args.running)
    print(
        f"controller update cost per call over {args.repeats} runs x {args.iterations} "
        f"updates, {args.running} running requests"
    )
    print(
        f"{'policy':<14} {'median us':>10} {'mean us':>9} {'p99 us':>9}  "
        f"{'median vs 10 ms step':>20}  {'CPU mean us':>11}"
    )
    for policy in policies:
        med, mean, p99 = bench_policy(policy, samples, finished, args.repeats)
        # the same runs timed by this thread's CPU time: on a loaded machine the wall mean
        # also counts the OS preempting the process inside a call
        cpu_mean = bench_policy(policy, samples, finished, args.repeats, clock=time.thread_time)[1]
        print(
            f"{policy:<14} {med * 1e6:>10.2f} {mean * 1e6:>9.2f} {p99 * 1e6:>9.2f}  "
            f"{med / 0.010:>19.4%}  {cpu_mean * 1e6:>11.2f}"
        )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("controller-bench", help="time one controller update per policy")
    p.add_argument("--policy", choices=POLICIES, default=None, help="one policy (default: all)")
    p.add_argument("--running", type=int, default=64, help="requests in flight (default 64)")
    p.add_argument("--iterations", type=int, default=2000, help="updates per run (default 2000)")
    p.add_argument("--repeats", type=int, default=7, help="runs (every call is timed)")
    p.set_defaults(func=run)

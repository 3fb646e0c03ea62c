"""The chaos run: thousands of requests against a real tritonserver, seeded.

Mix: streaming and non-streaming; ~10 % cancelled by the client at a random point
(each on its own gRPC call, cancelled like stop_stream(cancel_requests=True): after a
random number of streamed tokens, or after a random delay for non-streaming ones);
~5 % invalid; sent in bursts of up to 150 requests so the admission queue overflows.
Every request is then classified from what its client saw; `Result` holds the counts.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import grpc
import numpy as np

from .client import Lane, Outcome, gen_tensors, make_request, wait_all

BAD = [  # (tensors builder, expected error fragment): refused inside the model
    (lambda: gen_tensors([], 4), "input_ids is empty"),
    (lambda: gen_tensors([1, 2], 0), "request_output_len must be in"),
    (lambda: gen_tensors([1, 2], 2**31 - 1), "request_output_len must be in"),
    (lambda: gen_tensors([1, 32000], 4), "outside the vocabulary"),
    (lambda: gen_tensors([1, 2], 4, temperature=np.asarray([[-1.0]], np.float32)), "temperature"),
    (
        lambda: gen_tensors([1, 2], 4, runtime_top_p=np.asarray([[2.0]], np.float32)),
        "runtime_top_p",
    ),
]
BURSTS = (5, 10, 20, 40, 80, 150)


@dataclass
class Planned:
    rid: str
    kind: str  # "good" | "bad" | "cancel"
    streaming: bool
    output_len: int
    prompt: list
    bad: int = -1  # index into BAD
    cancel_after: int = 0  # streamed tokens before the cancel (streaming)
    cancel_delay_s: float = 0.0  # non-streaming: delay before the cancel


def plan(n: int, seed: int) -> list[Planned]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        kind = "bad" if r < 0.05 else "cancel" if r < 0.15 else "good"
        streaming = rng.random() < (0.8 if kind == "cancel" else 0.6)
        n_out = rng.randint(2, 12)
        p = Planned(
            f"r{i}",
            kind,
            streaming,
            n_out,
            [rng.randint(1, 31999) for _ in range(rng.randint(1, 48))],
        )
        if kind == "bad":
            p.bad = rng.randrange(len(BAD))
        elif kind == "cancel":
            p.cancel_after = rng.randint(1, max(1, n_out - 1))
            p.cancel_delay_s = rng.uniform(0.0, 0.05)
        out.append(p)
    return out


@dataclass
class Result:
    seed: int
    requests: int = 0
    streaming: int = 0
    completed: int = 0  # full output, exactly request_output_len tokens
    invalid_rejected: int = 0  # bad input, refused with the expected error
    queue_full_rejected: int = 0
    cancelled_by_client: int = 0  # the client cancelled before any final came
    cancel_planned: int = 0
    cancel_answered_first: int = 0  # planned cancels whose final came before the cancel
    unexpected: list = field(default_factory=list)  # wrong answers (must stay empty)
    lost: int = 0  # no final, no error, not cancelled (must be 0)
    streams_hung: int = 0  # gRPC calls the server never closed (must be 0)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["unexpected"] = self.unexpected[:20]
        d["unexpected_count"] = len(self.unexpected)
        return d


def run(
    grpc_url: str,
    model: str,
    n: int,
    seed: int,
    *,
    lanes: int = 4,
    cancel_workers: int = 12,
    timeout_s: float = 400.0,
) -> Result:
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    rng = random.Random(seed + 1)
    items = plan(n, seed)
    res = Result(
        seed=seed,
        requests=n,
        streaming=sum(p.streaming for p in items),
        cancel_planned=sum(p.kind == "cancel" for p in items),
    )
    outcomes: dict[str, Outcome] = {}
    lock = threading.Lock()
    channel = grpc.insecure_channel(grpc_url)
    normal = [Lane(channel, outcomes, lock) for _ in range(lanes)]
    cancel_lanes: list[Lane] = []

    def cancel_job(p: Planned) -> None:
        reached = threading.Event()
        lane = Lane(
            channel,
            outcomes,
            lock,
            on_token=lambda rid, o: reached.set() if o.tokens >= p.cancel_after else None,
        )
        with lock:
            cancel_lanes.append(lane)
        out = lane.send(
            make_request(model, p.rid, gen_tensors(p.prompt, p.output_len, p.streaming))
        )
        if p.streaming:
            while not reached.is_set() and not out.done.is_set() and time.monotonic() < deadline:
                reached.wait(0.05)
        else:
            out.done.wait(p.cancel_delay_s)
        if not out.done.is_set():
            lane.cancel()
        lane.ended.wait(10) or lane.close(5)

    pool = ThreadPoolExecutor(cancel_workers)
    sent = 0
    try:
        i = 0
        while i < n and time.monotonic() < deadline:
            burst = items[i : i + rng.choice(BURSTS)]
            i += len(burst)
            for p in burst:
                if p.kind == "cancel":
                    pool.submit(cancel_job, p)
                    continue
                tensors = (
                    BAD[p.bad][0]()
                    if p.kind == "bad"
                    else gen_tensors(p.prompt, p.output_len, p.streaming)
                )
                normal[sent % lanes].send(make_request(model, p.rid, tensors))
                sent += 1
            # let the backlog drain below a few batches before the next burst
            while time.monotonic() < deadline:
                with lock:
                    backlog = sum(1 for o in outcomes.values() if not o.terminal)
                if backlog < 24:
                    break
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.1))
        pool.shutdown(wait=True)
        wait_all(outcomes, max(1.0, deadline - time.monotonic()))
        res.streams_hung = sum(0 if lane.close(10) else 1 for lane in normal)
        res.streams_hung += sum(0 if lane.ended.is_set() else 1 for lane in cancel_lanes)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for lane in normal + cancel_lanes:
            if not lane.ended.is_set():
                lane.cancel()
        channel.close()
    _classify(items, outcomes, res)
    res.seconds = round(time.monotonic() - t0, 1)
    return res


def _classify(items: list[Planned], outcomes: dict, res: Result) -> None:
    for p in items:
        o: Outcome | None = outcomes.get(p.rid)
        if o is None or not o.terminal:
            res.lost += 1
            continue
        if o.finals > 1 or (o.finals == 1 and o.cancelled):
            res.unexpected.append((p.rid, "more than one final", o.finals, o.errors))
            continue
        if o.finals == 0:  # cancelled by the client before anything final came
            res.cancelled_by_client += 1
            if p.kind != "cancel":
                res.unexpected.append((p.rid, "cancelled but never asked to", p.kind))
            continue
        if p.kind == "cancel":
            res.cancel_answered_first += 1
        if o.errors:
            message = o.errors[0]
            if p.kind == "bad" and BAD[p.bad][1] in message:
                res.invalid_rejected += 1
            elif p.kind != "bad" and "queue full" in message:
                res.queue_full_rejected += 1
            else:
                res.unexpected.append((p.rid, p.kind, message[:120]))
        elif p.kind == "bad":
            res.unexpected.append((p.rid, "bad input was served", o.tokens))
        elif o.tokens != p.output_len + (0 if p.streaming else len(p.prompt)):
            # a non-streaming response echoes the prompt (exclude_input_in_output false)
            res.unexpected.append((p.rid, f"{o.tokens} tokens, asked {p.output_len}"))
        else:
            res.completed += 1

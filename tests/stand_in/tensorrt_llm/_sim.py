"""The stand-in's executor loop, shared by the Executor and LLM API faces.

It is driven by dynabatch's simulated executor (`SimulatedExecutor`: the same paged KV
pool, capacity scheduler, chunked prefill and roofline step latency the simulated
engine serves with), so the TensorRT-LLM adapters can carry a whole benchmark and their
results compare with `engine=simulated`. What this layer adds is TensorRT-LLM's face:

- responses with TensorRT-LLM's finish reasons; a non-streaming request gets one
  response, at the end; a streaming one a response per iteration it produced tokens;
- iteration stats as TensorRT-LLM's `IterationStats::toJsonStr` records (camelCase),
  `numPausedRequests` = requests paused *in that iteration* (TensorRT-LLM's meaning);
  the LLM API face reports `numCtxTokens` 0 (`report_ctx_tokens=False`), as several
  PyTorch-backend releases do;
- a queued request's cancel takes effect when the loop fetches it (next iteration);
- `fail_next_iteration(msg)` (test hook, not TensorRT-LLM): the next forward pass fails,
  which fails the *active* requests (scheduled or paused) with `msg`; requests still
  queued survive and run afterwards, as after a failed forward pass in TensorRT-LLM;
- `stall(True)` (test hook): the loop runs no iteration (a hung forward pass: no tokens,
  responses or stats) until `stall(False)` or shutdown.

Tokens are deterministic and independent of the scheduler: token i of a request is
(sum(prompt) + 7 * i) % 997 + 3, and `end_id` stops a request at its first occurrence.

Clock: `virtual=False` (tests, live serving) runs a thread that sleeps after each
iteration `iter_time_s`, or the simulated latency x `time_scale` when that is given,
and stamps records with the wall clock. `virtual=True` runs no thread: whoever drives
the benchmark calls `step()`/`advance_to()` and records carry the virtual time.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

from dynabatch.engines.base import EngineError
from dynabatch.engines.simulated.executor import SimulatedExecutor
from dynabatch.types import FinishReason, GenerationRequest, IterationStats, TokenEvent

# The profile whose latency the stand-in reports unless the model directory names one.
DEFAULT_PROFILE = "llama-2-7b-a100-80gb"
# Virtual time 0 as a TensorRT-LLM timestamp (any fixed date will do).
_VIRTUAL_EPOCH = datetime.datetime(2026, 1, 1)


def token_at(prompt: list[int], i: int) -> int:
    return _token(sum(prompt), i)


def _token(base: int, i: int) -> int:
    return (base + 7 * i) % 997 + 3


def stop_position(base: int, end_id: Optional[int], max_tokens: int) -> int:
    """Tokens a request produces: up to and including the first end_id, or max_tokens.
    The tokens repeat every 997, so looking that far is enough."""
    if end_id is not None:
        for i in range(min(max_tokens, 997)):
            if _token(base, i) == end_id:
                return i + 1
    return max_tokens


def stand_in_pool(
    knobs: dict, tokens_per_block: int, fraction: float, max_tokens: Optional[int]
) -> int:
    """KV pool in tokens: a named simulator profile's memory (so a benchmark through the
    adapters sees the simulated engine's pool), else fraction x 65536; `max_tokens` caps."""
    if knobs.get("profile"):
        from dynabatch.engines.simulated.profiles import get_profile

        blocks = get_profile(knobs["profile"]).kv_blocks(tokens_per_block, fraction, max_tokens)
        return blocks * tokens_per_block
    pool = int(fraction * 65536)
    return min(pool, max_tokens) if max_tokens is not None else pool


def stand_in_settings(knobs: dict) -> dict:
    """SimEngine keywords from the model directory's `stand_in` section: `profile` (latency
    and pool), `time_scale` (sleep simulated latency x scale), `virtual_clock`."""
    out: dict = {}
    if knobs.get("profile"):
        out["profile"] = knobs["profile"]
    if knobs.get("time_scale"):
        out["time_scale"] = float(knobs["time_scale"])
    if knobs.get("virtual_clock"):
        out["virtual"] = True
    return out


@dataclass
class SimResponse:
    request_id: int
    client_id: Optional[int]
    tokens: list[int]
    is_final: bool
    finish_reason: str  # "NOT_FINISHED", "END_ID", "LENGTH", "CANCELLED"
    error: Optional[str] = None


@dataclass
class _Req:
    id: int
    base: int  # sum of the prompt: the seed of its tokens
    streaming: bool
    client_id: Optional[int]
    produced: int = 0  # tokens the simulator produced so far
    sent: int = 0  # tokens already delivered


_FINISH = {
    FinishReason.LENGTH: "LENGTH",
    FinishReason.EOS: "END_ID",  # the stand-in's end_id stop (see stop_position)
    FinishReason.END_ID: "END_ID",
    FinishReason.CANCELLED: "CANCELLED",
}


class SimEngine:
    def __init__(
        self,
        *,
        total_blocks: int,
        tokens_per_block: int,
        max_batch_size: int,
        max_num_tokens: int,
        policy: str,
        max_input_len: int,
        max_seq_len: int,
        chunked: bool,
        stats_max: int,
        emit: Callable[[SimResponse], None],
        iter_time_s: float = 0.002,
        profile: str = DEFAULT_PROFILE,
        time_scale: Optional[float] = None,
        virtual: bool = False,
        report_ctx_tokens: bool = True,
    ) -> None:
        self.max_input_len = max_input_len
        self.max_seq_len = max_seq_len
        self.max_num_tokens = max_num_tokens
        self.chunked = chunked
        self._emit = emit
        self.iter_time_s = iter_time_s
        self.time_scale = time_scale
        self.virtual = virtual
        self.report_ctx_tokens = report_ctx_tokens
        self.exe = SimulatedExecutor(
            profile,
            max_batch_size=max_batch_size,
            max_num_tokens=max_num_tokens,
            tokens_per_block=tokens_per_block,
            capacity_policy=policy.lower(),
            max_tokens_in_paged_kv_cache=total_blocks * tokens_per_block,
            enable_chunked_context=chunked,
        )
        self.total_blocks = total_blocks
        self.tokens_per_block = tokens_per_block
        self.max_batch_size = max_batch_size
        self.stats: deque = deque(maxlen=max(1, stats_max))
        self.reqs: dict[int, _Req] = {}
        self._failing: dict[int, str] = {}  # request id -> error of a failed forward pass
        self._fail_msg: Optional[str] = None
        self._stalled = False
        self._next_id = 1
        self._iter = 0
        # Benchmark hooks (not TensorRT-LLM): a trace's hidden output lengths, consumed
        # one per enqueue in order (TensorRT-LLM requests carry no such field), and
        # counters a virtual-clock driver waits on.
        self.hidden_lengths: deque = deque()
        self.enqueued = 0
        self.responses = 0
        self.records = 0
        self._lock = threading.Condition()
        self._stop = False
        self._thread: Optional[threading.Thread] = None
        if not virtual:
            self._thread = threading.Thread(
                target=self._loop, name="stand-in-executor", daemon=True
            )
            self._thread.start()

    def emit(self, response: SimResponse) -> None:
        self.responses += 1
        self._emit(response)

    # ---- called from user threads ------------------------------------------------
    def enqueue(
        self,
        prompt: list[int],
        max_tokens: int,
        streaming: bool,
        end_id: Optional[int],
        beam_width: int = 1,
        client_id: Optional[int] = None,
    ) -> int:
        with self._lock:
            if self._stop:
                raise RuntimeError(
                    "[TensorRT-LLM][ERROR] Assertion failed: Shutdown called, "
                    "cannot enqueue requests"
                )
            rid = self._next_id
            self._next_id += 1
            self.enqueued += 1
            hidden = self.hidden_lengths.popleft() if self.hidden_lengths else None
            error = None
            if len(prompt) > self.max_input_len or len(prompt) + max_tokens > self.max_seq_len:
                error = (
                    f"[TensorRT-LLM][ERROR] Assertion failed: Prompt length ({len(prompt)}) "
                    f"+ max new tokens ({max_tokens}) exceeds max_seq_len ({self.max_seq_len}) "
                    f"or max_input_len ({self.max_input_len})"
                )
            else:
                base = sum(prompt)
                stop = stop_position(base, end_id, max_tokens)
                if hidden is not None:
                    stop = min(stop, max(1, hidden))
                request = GenerationRequest(
                    rid,
                    list(prompt),
                    max_tokens,
                    streaming=True,  # the stand-in batches deliveries itself
                    true_output_len=stop if stop < max_tokens else None,
                )
                try:
                    self.exe.submit(request)
                except EngineError as exc:  # never fits the pool, prompt over max_num_tokens
                    error = f"[TensorRT-LLM][ERROR] Assertion failed: {exc}"
            if error is not None:
                # The real executor answers such a request with an error response.
                self.emit(SimResponse(rid, client_id, [], True, "NOT_FINISHED", error))
                return rid
            self.reqs[rid] = _Req(rid, base, streaming, client_id)
            self._lock.notify()
            return rid

    def cancel(self, rid: int) -> None:
        with self._lock:
            if rid in self.reqs:
                self.exe.cancel(rid)  # fetched (and answered) at the next iteration
                self._lock.notify()

    def fail_next_iteration(self, message: str) -> None:
        with self._lock:
            self._fail_msg = message
            self._lock.notify()

    def stall(self, stalled: bool = True) -> None:
        with self._lock:
            self._stalled = stalled
            self._lock.notify()

    def take_stats(self) -> list[dict]:
        with self._lock:
            out = list(self.stats)
            self.stats.clear()
            return out

    def shutdown(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def stopped(self) -> bool:
        return self._stop

    # ---- virtual clock (benchmark) -----------------------------------------------
    @property
    def has_work(self) -> bool:
        return self.exe.has_work or self._fail_msg is not None

    def now(self) -> float:
        return self.exe.now()

    def step(self) -> bool:
        """One iteration on the virtual clock; False when there was nothing to run."""
        with self._lock:
            return self._step() is not None

    def advance_to(self, t: float) -> None:
        self.exe.advance_to(t)

    # ---- the executor loop -------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._stop and (self._stalled or not self.has_work):
                    self._lock.wait(0.05)
                if self._stop:
                    return
                latency = self._step()
            if latency is None:
                with self._lock:  # work that cannot run yet: wait for news
                    self._lock.wait(0.01)
                continue
            pause = latency * self.time_scale if self.time_scale else self.iter_time_s
            time.sleep(pause)

    def _step(self) -> Optional[float]:
        """One iteration under the lock: the simulated latency (s), or None."""
        if self._fail_msg is not None:
            msg, self._fail_msg = self._fail_msg, None
            for rid in self._active_ids():
                self._failing[rid] = msg
                self.exe.cancel(rid)
        try:
            stats = self.exe.step()
            self.exe.drain_stats()  # `stats` is that record: keep the simulator's outbox empty
        except EngineError as exc:  # the simulator's own fault injection
            stats = None
            for rid in list(self.reqs):
                self._failing.setdefault(rid, str(exc))
        delivered = self._deliver(self.exe.poll_events())
        if stats is None:
            if delivered and not self.exe.has_work:
                # cancellations / failures emptied the engine: TensorRT-LLM still records
                # that iteration (its pool now all free)
                self.stats.append(self._record(self._idle_stats()))
                self.records += 1
            return None
        self.stats.append(self._record(stats))
        self.records += 1
        return stats.iter_latency_ms / 1e3

    def _idle_stats(self) -> IterationStats:
        cap = self.exe.kv_capacity
        return IterationStats(
            iter=0,
            timestamp=self.exe.now(),
            iter_latency_ms=0.0,
            num_active_requests=0,
            num_queued_requests=0,
            num_completed_requests=0,
            max_num_active_requests=self.max_batch_size,
            max_num_blocks=cap.total_blocks,
            free_num_blocks=cap.total_blocks,
            used_num_blocks=0,
            tokens_per_block=cap.tokens_per_block,
        )

    def _active_ids(self) -> list[int]:
        """Requests in the active set (scheduled or paused): a failing forward pass takes
        these; queued ones were not fetched yet and survive."""
        sched = self.exe.sched
        return [s.rid for s in list(sched.running) + list(sched.paused)]

    def _deliver(self, events: list[TokenEvent]) -> int:
        for ev in events:
            req = self.reqs.get(ev.request_id)
            if req is None:
                continue
            req.produced += len(ev.token_ids)
            if ev.finished:
                del self.reqs[req.id]
                error = self._failing.pop(req.id, None)
                if error is None and ev.finish_reason == FinishReason.ERROR:
                    error = ev.error or "forward pass failed"
                if error is not None:
                    self.emit(SimResponse(req.id, req.client_id, [], True, "NOT_FINISHED", error))
                    continue
                self.emit(
                    SimResponse(
                        req.id,
                        req.client_id,
                        self._take(req),
                        True,
                        _FINISH.get(ev.finish_reason, "LENGTH"),
                    )
                )
            elif req.streaming and req.produced > req.sent:
                self.emit(
                    SimResponse(req.id, req.client_id, self._take(req), False, "NOT_FINISHED")
                )
        return len(events)

    def _take(self, req: _Req) -> list[int]:
        tokens = [_token(req.base, i) for i in range(req.sent, req.produced)]
        req.sent = req.produced
        return tokens

    def _stamp(self, t: float) -> str:
        when = (
            _VIRTUAL_EPOCH + datetime.timedelta(seconds=t)
            if self.virtual
            else datetime.datetime.now()
        )
        return when.strftime("%m-%d-%Y %H:%M:%S.%f")

    def _record(self, s: IterationStats) -> dict:
        """One IterationStats::toJsonStr record."""
        self._iter += 1
        return {
            "timestamp": self._stamp(s.timestamp),
            "iter": self._iter,
            "iterLatencyMS": s.iter_latency_ms,
            "newActiveRequestsQueueLatencyMS": 0.0,
            "numNewActiveRequests": s.num_context_requests,
            "numActiveRequests": s.num_active_requests,
            "numQueuedRequests": s.num_queued_requests,
            "numCompletedRequests": s.num_completed_requests,
            "maxNumActiveRequests": s.max_num_active_requests,
            "gpuMemUsage": 1 << 30,
            "cpuMemUsage": 1 << 20,
            "pinnedMemUsage": 0,
            "kvCacheStats": {
                "maxNumBlocks": s.max_num_blocks,
                "freeNumBlocks": s.free_num_blocks,
                "usedNumBlocks": s.used_num_blocks,
                "tokensPerBlock": s.tokens_per_block,
                "allocTotalBlocks": s.used_num_blocks,
                "allocNewBlocks": 0,
                "reusedBlocks": 0,
                "missedBlocks": 0,
                "cacheHitRate": 0.0,
            },
            "staticBatchingStats": None,
            "inflightBatchingStats": {
                "numScheduledRequests": s.num_scheduled_requests,
                "numContextRequests": s.num_context_requests,
                "numGenRequests": s.num_gen_requests,
                "numPausedRequests": s.num_new_pauses,
                "numCtxTokens": s.num_ctx_tokens if self.report_ctx_tokens else 0,
                "microBatchId": 0,
                "avgNumDecodedTokensPerIter": 1.0,
            },
        }

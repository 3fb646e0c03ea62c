"""SimulatedExecutor: the Engine protocol over the scheduler, block manager and latency
model, on a virtual clock (`step()`) or in real time (`start_realtime()`).

Threading: `submit`, `cancel` and `inject_fault` only append to an inbox (any thread);
the scheduler state is touched only by whoever iterates (the caller of `step()`, or
the real-time driver thread). The outbox (events, stats) is guarded by `_cond`.

Events: a streaming request gets an event every iteration it produces a token; a
non-streaming one gets one event with its first token, then one final event with the
rest. A request stopped by `end_id` includes that token as its last one.

Faults: a "raise" fault fails every request the engine holds (final ERROR event,
blocks freed) and raises EngineError; the engine is then empty and usable again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ...types import FinishReason, GenerationRequest, IterationStats, TokenEvent
from ..base import EngineError, KvCapacity
from .kv_cache import BlockManager
from .latency import LatencyModel
from .profiles import Profile, get_profile
from .scheduler import Scheduler, Seq
from .tokens import first_position_of, output_vocab, token_base, tokens_range

if TYPE_CHECKING:
    from .realtime import RealtimeDriver


class SimulatedExecutor:
    def __init__(
        self,
        profile: Profile | str,
        *,
        max_batch_size: int,
        max_num_tokens: int = 8192,
        tokens_per_block: int = 64,
        capacity_policy: str = "max_utilization",
        kv_cache_free_gpu_mem_fraction: float = 0.9,
        max_tokens_in_paged_kv_cache: int | None = None,
        enable_chunked_context: bool = True,
        seed: int = 0,
        context_blocks: str = "prompt",
    ) -> None:
        self.profile = get_profile(profile)
        if not 0.0 < kv_cache_free_gpu_mem_fraction <= 1.0:
            raise ValueError("kv_cache_free_gpu_mem_fraction must be in (0, 1]")
        total = self.profile.kv_blocks(
            tokens_per_block, kv_cache_free_gpu_mem_fraction, max_tokens_in_paged_kv_cache
        )
        if total < 1:
            raise ValueError(f"profile {self.profile.name}: no GPU memory left for the KV cache")
        self.max_batch_size = max_batch_size
        self.max_num_tokens = max_num_tokens
        self.kv_capacity = KvCapacity(total, tokens_per_block)
        self.capacity_policy = capacity_policy
        self.seed = seed
        self.latency = LatencyModel(self.profile)
        self.blocks = BlockManager(total, tokens_per_block)
        self.sched = Scheduler(
            self.blocks,
            max_batch_size=max_batch_size,
            max_num_tokens=max_num_tokens,
            policy=capacity_policy,
            chunked_context=enable_chunked_context,
            context_blocks=context_blocks,
        )
        self._vocab = output_vocab(self.profile.model.vocab_size)
        self._seqs: dict[int, Seq] = {}  # stepping thread only
        self._live: set[int] = set()  # ids in flight, for submit's duplicate check
        self._live_lock = threading.Lock()
        self._inbox: deque = deque()
        self._cond = threading.Condition()
        self._events: list[TokenEvent] = []
        self._stats: list[IterationStats] = []
        self._error: str | None = None  # real time: raised by the next poll_events
        self._fault: list | None = None  # [kind, iterations left, stall_s, message]
        self._now = 0.0
        self._iter = 0
        self._recomputed = 0
        # What TensorRT-LLM's executor records for the iteration in flight: its loop
        # fetches queued requests, schedules them and allocates their KV blocks
        # (forwardAsync), then records the iteration's stats before the forward pass ends.
        # Those are what its metrics show while the iteration runs; the stats published
        # at the end of an iteration (what the controllers read) come later.
        self.launch_stats: IterationStats | None = None
        self._closed = False
        self._driver: RealtimeDriver | None = None  # once started
        self.time_scale = 1.0

    # ---- Engine protocol (any thread) -------------------------------------------------
    def submit(self, request: GenerationRequest) -> None:
        if self._closed:
            raise EngineError("engine is shut down")
        seq = self._make_seq(request)
        with self._live_lock:
            if request.request_id in self._live:
                raise EngineError(f"request id {request.request_id} is already in flight")
            self._live.add(request.request_id)
        self._inbox.append(("submit", seq))
        self._notify()

    def cancel(self, request_id: int) -> None:
        self._inbox.append(("cancel", request_id))
        self._notify()

    def poll_events(self, timeout: float = 0.0) -> list[TokenEvent]:
        with self._cond:
            if (
                self._driver is not None
                and timeout > 0
                and not self._events
                and self._error is None
            ):
                deadline = time.monotonic() + timeout
                while not self._events and self._error is None and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            if self._error is not None:
                message, self._error = self._error, None
                raise EngineError(message)
            events, self._events = self._events, []
        return events

    def drain_stats(self) -> list[IterationStats]:
        with self._cond:
            stats, self._stats = self._stats, []
        return stats

    def now(self) -> float:
        """Simulated-GPU seconds. In real time that is wall time / time_scale, so queue
        waits, timestamps and step latencies share one unit whatever the scale."""
        if self._driver is None:
            return self._now
        return (time.monotonic() - self._wall_origin) / self.time_scale

    def shutdown(self) -> None:
        """Stop (and join) the driver thread; requests still held get a final ERROR event."""
        self._closed = True
        if self._driver is not None:
            self._driver.stop()
        self._drain_inbox()
        self._fail_all("engine shut down")
        self._notify()

    # ---- virtual clock ------------------------------------------------------------------
    @property
    def has_work(self) -> bool:
        return bool(self._inbox) or len(self.sched) > 0

    def step(self) -> IterationStats | None:
        """Run one iteration and advance the clock by its latency; None if no work."""
        if self._driver is not None:
            raise EngineError("step() drives the virtual clock; this engine runs in real time")
        out = self._iterate()
        if out is None:
            return None
        latency, events, stats = out
        self._now += latency
        self._publish(self._now, events, stats)
        return stats

    def advance_to(self, t: float) -> None:
        """Move the (idle) virtual clock forward to `t`; never backwards."""
        if t > self._now:
            self._now = t

    # ---- real time ------------------------------------------------------------------------
    def start_realtime(self, time_scale: float = 1.0) -> None:
        from .realtime import RealtimeDriver

        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if self._driver is not None:
            raise EngineError("real-time driver already running")
        self.time_scale = time_scale
        self._wall_origin = time.monotonic() - self._now * time_scale
        self._driver = RealtimeDriver(self, time_scale)
        self._driver.start()

    # ---- fault injection ------------------------------------------------------------------
    def inject_fault(
        self,
        kind: str,
        *,
        after_iterations: int = 0,
        stall_s: float = 0.0,
        message: str = "injected engine fault",
    ) -> None:
        """'raise': iteration number after_iterations+1 from now raises EngineError;
        'stall': that iteration takes stall_s longer (real time: it sleeps)."""
        if kind not in ("raise", "stall"):
            raise ValueError("fault kind must be 'raise' or 'stall'")
        self._fault = [kind, int(after_iterations), float(stall_s), message]

    # ---- internals (stepping thread) ------------------------------------------------------
    def _notify(self) -> None:
        if self._driver is not None:
            with self._cond:
                self._cond.notify_all()

    def _make_seq(self, req: GenerationRequest) -> Seq:
        cap = self.kv_capacity
        if req.prompt_len < 1 or req.max_new_tokens < 1:
            raise EngineError("a request needs at least one prompt token and max_new_tokens >= 1")
        if req.prompt_len + req.max_new_tokens > cap.total_tokens:
            raise EngineError(
                f"prompt + max_new_tokens = {req.prompt_len + req.max_new_tokens} "
                f"tokens exceeds the KV cache ({cap.total_tokens} tokens)"
            )
        if not self.sched.chunked and req.prompt_len > self.max_num_tokens:
            raise EngineError(
                f"prompt of {req.prompt_len} tokens exceeds max_num_tokens "
                f"({self.max_num_tokens}) and chunked context is off"
            )
        base = token_base(self.seed, req.request_id)
        stop_len, reason = req.max_new_tokens, FinishReason.LENGTH
        if req.true_output_len is not None and max(1, req.true_output_len) < stop_len:
            stop_len, reason = max(1, req.true_output_len), FinishReason.EOS
        if req.end_id is not None:
            pos = first_position_of(base, req.end_id, stop_len, self._vocab)
            if pos >= 0:
                stop_len, reason = pos + 1, FinishReason.END_ID
        return Seq(req, stop_len, reason, base)

    def _drain_inbox(self) -> None:
        inbox = self._inbox
        while inbox:
            kind, payload = inbox.popleft()
            if kind == "submit":
                self._seqs[payload.rid] = payload
                self.sched.add(payload)
                continue
            seq = self._seqs.pop(payload, None)
            if seq is None:
                continue  # unknown or already finished: nothing to do
            self.sched.remove(seq)
            self._final(seq, FinishReason.CANCELLED, None, self.now())

    def _final(self, seq: Seq, reason: FinishReason, error: str | None, t: float) -> None:
        """Emit a request's last event now (cancel, error) with its undelivered tokens."""
        tokens = (
            tokens_range(seq.token_base, seq.emitted, seq.generated, self._vocab)
            if error is None
            else []
        )
        seq.emitted = seq.generated
        with self._live_lock:
            self._live.discard(seq.rid)
        with self._cond:
            self._events.append(TokenEvent(seq.rid, tokens, True, reason, error, t))
            self._cond.notify_all()

    def _fail_all(self, message: str) -> None:
        now = self.now()
        for seq in list(self._seqs.values()):
            self.sched.remove(seq)
            self._final(seq, FinishReason.ERROR, message, now)
        self._seqs.clear()

    def _iterate(self):
        """One iteration: (latency_s, events, stats) with times left to `_publish`, or None."""
        self._drain_inbox()
        if not len(self.sched):
            return None
        stall = 0.0
        fault = self._fault
        if fault is not None:
            if fault[1] > 0:
                fault[1] -= 1
            else:
                self._fault = None
                if fault[0] == "raise":
                    self._fail_all(fault[3])
                    raise EngineError(fault[3])
                stall = fault[2]
        ctx, gen, pauses = self.sched.schedule()
        if not ctx and not gen and not pauses:
            return None
        self.launch_stats = self._launch_stats(ctx, gen, pauses)
        produced: list[Seq] = []
        ctx_tokens = kv_read = 0
        attn = 0.0
        recomputed = 0
        for s, chunk in ctx:
            past = s.prefilled
            if past < s.recompute_mark:
                recomputed += min(past + chunk, s.recompute_mark) - past
            kv_read += past
            attn += chunk * (past + 0.5 * chunk)
            s.prefilled = s.kv_len = past + chunk
            ctx_tokens += chunk
            if s.prefilled == s.ctx_len:  # the prefill's last chunk yields a token
                s.generated += 1
                produced.append(s)
        for s in gen:
            kv_read += s.kv_len
            s.kv_len += 1
            s.generated += 1
        produced.extend(gen)
        self._recomputed += recomputed
        latency = self.latency.step_s(ctx_tokens + len(gen), kv_read, attn) + stall

        events: list[TokenEvent] = []
        finished: list[Seq] = []
        vocab = self._vocab
        for s in produced:
            if s.generated >= s.stop_len:
                finished.append(s)
                events.append(
                    TokenEvent(
                        s.rid,
                        tokens_range(s.token_base, s.emitted, s.generated, vocab),
                        True,
                        s.stop_reason,
                    )
                )
                s.emitted = s.generated
            elif s.streaming or not s.emitted:
                events.append(
                    TokenEvent(s.rid, tokens_range(s.token_base, s.emitted, s.generated, vocab))
                )
                s.emitted = s.generated
        if finished:
            self.sched.drop_finished(finished)
            with self._live_lock:
                for s in finished:
                    del self._seqs[s.rid]
                    self._live.discard(s.rid)
        self._iter += 1
        sched = self.sched
        stats = self._iteration_stats(
            ctx,
            gen,
            pauses,
            ctx_tokens,
            iter=self._iter,
            timestamp=0.0,
            iter_latency_ms=latency * 1e3,
            num_active_requests=sched.num_started + sched.num_paused,
            num_queued_requests=sched.num_waiting,
            num_completed_requests=len(finished),
            num_new_pauses=pauses,
            total_recomputed_tokens=self._recomputed,
        )
        return latency, events, stats

    def _iteration_stats(
        self, ctx: list, gen: list, pauses: int, ctx_tokens: int, **when: Any
    ) -> IterationStats:
        """The fields both views of an iteration share (the block pool as it stands and
        the iteration's schedule); `when` the ones that differ at launch and at the end."""
        bm = self.blocks
        return IterationStats(
            max_num_active_requests=self.max_batch_size,
            max_num_blocks=bm.total_blocks,
            free_num_blocks=bm.free_blocks,
            used_num_blocks=bm.total_blocks - bm.free_blocks,
            tokens_per_block=bm.tokens_per_block,
            num_scheduled_requests=len(ctx) + len(gen),
            num_context_requests=len(ctx),
            num_gen_requests=len(gen),
            num_paused_requests=pauses,  # TensorRT-LLM's meaning: paused in this iteration
            num_ctx_tokens=ctx_tokens,
            num_gen_tokens=len(gen),
            **when,
        )

    def _launch_stats(self, ctx: list, gen: list, pauses: int) -> IterationStats:
        """The iteration's stats as TensorRT-LLM records them at its launch
        (executorImpl.cpp: fetchNewRequests, forwardAsync, then updateIterationStats):
        queued = requests not yet fetched into the active list; the blocks of every
        context scheduled now are allocated already (the whole prompt at its first chunk,
        allocateKvCache.cpp); requests finishing in this iteration still hold theirs."""
        sched = self.sched
        return self._iteration_stats(
            ctx,
            gen,
            pauses,
            sum(chunk for _, chunk in ctx),
            iter=self._iter + 1,
            timestamp=self.now(),
            iter_latency_ms=0.0,  # not known until the iteration ends
            num_active_requests=len(sched.active),
            num_queued_requests=len(sched.queue),
            num_completed_requests=0,
        )

    def _publish(self, t: float, events: list[TokenEvent], stats: IterationStats) -> None:
        stats.timestamp = t
        for e in events:
            e.time = t
        with self._cond:
            self._events.extend(events)
            self._stats.append(stats)
            self._cond.notify_all()

"""ServingCore: gate + controller + engine, one `step()` at a time.

The Triton model runs `step()` in a background thread (real-time engine); the
benchmark calls it between virtual-clock engine iterations. Same object, same code.

Threading: `submit` and `cancel` may be called from any thread (they only append to
an inbox); everything else runs on the thread that calls `step()`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from .controller.base import Controller
from .engines.base import Engine, EngineError
from .gate import AdmissionGate
from .types import (
    ControlInput,
    FinishReason,
    GenerationRequest,
    IterationStats,
    RequestState,
    TokenEvent,
)


class ResponseSink(Protocol):
    """Receives a request's events; the event with `finished=True` is the last call."""

    def on_event(self, event: TokenEvent, state: RequestState | None) -> None: ...


@dataclass
class CoreCounters:
    """submitted = accepted + rejected; accepted = completed + cancelled + failed + in system."""

    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    timed_out: int = 0  # part of `failed`: waited longer than the queue timeout
    paused_total: int = 0
    recomputed_tokens: int = 0


class ServingCore:
    def __init__(self, engine: Engine, controller: Controller, gate: AdmissionGate) -> None:
        self.engine = engine
        self.controller = controller
        self.gate = gate
        self.running: dict[int, RequestState] = {}
        self._sinks: dict[int, ResponseSink] = {}
        self._inbox: deque = deque()
        self._wake = threading.Event()
        self.counters = CoreCounters()
        self.last_stats: IterationStats | None = None
        self.gpu_sample = None  # telemetry.GpuSample, refreshed by the metrics exporter

    # ---- any thread -------------------------------------------------------------
    def submit(self, request: GenerationRequest, sink: ResponseSink) -> None:
        self._inbox.append(("submit", request, sink))
        self._wake.set()

    def cancel(self, request_id: int) -> None:
        self._inbox.append(("cancel", request_id, None))
        self._wake.set()

    @property
    def idle(self) -> bool:
        return not self.running and not len(self.gate) and not self._inbox

    # ---- the stepping thread ----------------------------------------------------
    def admission_error(self, request: GenerationRequest) -> str | None:
        """Reasons a request can never be served by this engine (checked before queueing)."""
        cap = self.engine.kv_capacity
        if request.prompt_len < 1:
            return "input_ids must hold at least one token"
        if request.max_new_tokens < 1:
            return f"request_output_len must be >= 1, got {request.max_new_tokens}"
        need = request.prompt_len + request.max_new_tokens
        # An unknown pool (TensorRT-LLM before its first iteration) refuses nothing here:
        # the engine itself answers a request that can never fit with an error.
        if cap is not None and need > cap.total_tokens:
            return (
                f"prompt ({request.prompt_len} tokens) + request_output_len "
                f"({request.max_new_tokens}) = {need} tokens exceeds the KV cache "
                f"({cap.total_tokens} tokens)"
            )
        return None

    def step(self, timeout: float = 0.0) -> int:
        """Run one pass; return the number of token events dispatched.

        `timeout` bounds how long to wait for engine events when there are none.
        """
        self._drain_inbox()
        try:
            events = self.engine.poll_events(timeout if not self._inbox else 0.0)
            stats = self.engine.drain_stats()
        except EngineError as exc:
            self._fail_all(f"engine failure: {exc}")
            raise
        for event in events:
            self._dispatch(event)
        wants_head = getattr(self.controller, "wants_waiting_head", False)
        for s in stats:
            self.last_stats = s
            self.counters.paused_total += s.num_new_pauses
            self.counters.recomputed_tokens = s.total_recomputed_tokens
            self.controller.update(
                ControlInput(
                    stats=s,
                    num_waiting=len(self.gate),
                    oldest_wait_s=self.gate.oldest_wait(s.timestamp),
                    running=self.running,
                    waiting_head=[
                        (q.request.prompt_len, q.request.max_new_tokens) for q in self.gate.head()
                    ]
                    if wants_head
                    else (),
                    gpu=self.gpu_sample,
                )
            )
        now = self.engine.now()
        for item in self.gate.expire(now):
            self.counters.failed += 1
            self.counters.timed_out += 1
            self._finish_unadmitted(
                item.request.request_id,
                item.sink,
                FinishReason.ERROR,
                f"request waited longer than the queue timeout "
                f"({self.gate.queue_timeout_s:g} s) for admission",
                now,
            )
        self._admit(now)
        return len(events)

    def replace_engine(self, engine: Engine, controller: Controller) -> None:
        """Serve on with a rebuilt engine and a fresh controller (after an engine fault,
        once `fail_all` has answered everything the old engine held). Queued requests and
        the inbox carry over; the old controller's state described the old engine."""
        if self.running:
            raise RuntimeError(
                f"replace_engine with {len(self.running)} requests still on the old engine"
            )
        self.engine, self.controller = engine, controller
        self.last_stats = None

    def fail_all(self, message: str) -> None:
        """Give every queued and running request a final error (engine fault, shutdown)."""
        self._drain_inbox()
        self._fail_all(message)

    # ---- internals --------------------------------------------------------------
    def _drain_inbox(self) -> None:
        self._wake.clear()
        now = self.engine.now()
        while self._inbox:
            kind, payload, sink = self._inbox.popleft()
            if kind == "submit":
                self._accept(payload, sink, now)
            else:
                self._cancel(payload, now)

    def _accept(self, request: GenerationRequest, sink: ResponseSink, now: float) -> None:
        self.counters.submitted += 1
        rid = request.request_id
        error = self.admission_error(request)
        if error is None and (rid in self.running or rid in self.gate):
            error = f"request id {rid} is already in flight"
        if error is None:
            error = self.gate.offer(request, sink, now)
        if error is not None:
            self.counters.rejected += 1
            self._finish_unadmitted(rid, sink, FinishReason.REJECTED, error, now)
            return
        self.counters.accepted += 1

    def _cancel(self, request_id: int, now: float) -> None:
        item = self.gate.remove(request_id)
        if item is not None:
            self.counters.cancelled += 1
            self._finish_unadmitted(request_id, item.sink, FinishReason.CANCELLED, None, now)
        elif request_id in self.running:
            self.engine.cancel(request_id)  # the engine answers with a final CANCELLED event

    def _admit(self, now: float) -> None:
        limit = self.controller.limit
        while len(self.running) < limit:
            item = self.gate.pop()
            if item is None:
                return
            req = item.request
            self.running[req.request_id] = RequestState(
                request_id=req.request_id,
                prompt_len=req.prompt_len,
                max_new_tokens=req.max_new_tokens,
                arrival_time=item.enqueue_time,
                admitted_time=now,
            )
            self._sinks[req.request_id] = item.sink
            try:
                self.engine.submit(req)
            except EngineError as exc:
                self._end(
                    req.request_id,
                    TokenEvent(
                        req.request_id,
                        [],
                        True,
                        FinishReason.ERROR,
                        f"engine refused request: {exc}",
                        now,
                    ),
                )

    def _dispatch(self, event: TokenEvent) -> None:
        state = self.running.get(event.request_id)
        if state is None:
            return  # a late event for a request we already closed
        if event.token_ids:
            if state.first_token_time is None:
                state.first_token_time = event.time
            state.generated += len(event.token_ids)
        if event.finished:
            self._end(event.request_id, event)
        else:
            self._sinks[event.request_id].on_event(event, state)

    def _end(self, request_id: int, event: TokenEvent) -> None:
        state = self.running.pop(request_id)
        sink = self._sinks.pop(request_id)
        state.finish_time = event.time
        state.finish_reason = event.finish_reason
        if event.finish_reason in (FinishReason.CANCELLED, FinishReason.STOPPED):
            self.counters.cancelled += 1
        elif event.finish_reason == FinishReason.ERROR:
            self.counters.failed += 1
        else:
            self.counters.completed += 1
        self.controller.on_request_finish(state)
        sink.on_event(event, state)

    def _finish_unadmitted(
        self, rid: int, sink: ResponseSink, reason: FinishReason, error: str | None, now: float
    ) -> None:
        sink.on_event(TokenEvent(rid, [], True, reason, error, now), None)

    def _fail_all(self, message: str) -> None:
        now = self.engine.now()
        while True:
            item = self.gate.pop()
            if item is None:
                break
            self.counters.failed += 1
            self._finish_unadmitted(
                item.request.request_id, item.sink, FinishReason.ERROR, message, now
            )
        for rid in list(self.running):
            self._end(rid, TokenEvent(rid, [], True, FinishReason.ERROR, message, now))

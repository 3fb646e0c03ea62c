"""ServingCore: gate + controller + engine, one `step()` at a time.

The Triton model runs `step()` in a background thread (real-time engine); the
benchmark calls it between virtual-clock engine iterations. Same object, same code.

Threading: `submit` and `cancel` may be called from any thread (they only append to
an inbox); everything else runs on the thread that calls `step()`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from .controller.base import UNPACED, Controller
from .engines.base import Engine, EngineError
from .gate import AdmissionGate, tenant_of
from .queue_order import DEFAULT_TENANT
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


@dataclass
class PrefillCredit:
    """The account behind prefill pacing: a token bucket one iteration deep.

    The controller publishes the prompt tokens it allows per engine iteration
    (`prefill_tokens_per_step`; base.UNPACED = no pacing). Each iteration adds that
    much, up to one iteration's worth; an admission spends its prompt. A request is
    admitted while the balance is positive, so a prompt larger than one iteration's
    allowance still goes (alone) and the debt is paid over the next iterations:
    pacing spreads prompts, it never refuses one.

    `debtors` are the tenants whose admissions put the balance where it is: the one
    whose prompt spent the last of a positive balance, and every tenant that borrowed
    since. Under `fair` (`may_borrow`) another tenant need not wait for their debt."""

    balance: float = UNPACED
    per_step: float = UNPACED
    debtors: set[str] = field(default_factory=set)

    def follow(self, per_step: float) -> None:
        """Take the controller's current allowance (pacing starts with a full bucket)."""
        if per_step == UNPACED or self.balance == UNPACED:
            self.balance = per_step
        self.per_step = per_step

    def refill(self, per_step: float) -> None:
        """One engine iteration passed: add one iteration's allowance."""
        if per_step != UNPACED and self.balance != UNPACED:
            self.balance = min(per_step, self.balance + per_step)
        self.follow(per_step)

    @property
    def open(self) -> bool:
        return self.balance > 0

    def may_borrow(self, tenant: str) -> bool:
        """While the credit is spent, a tenant that made none of the debt may go (VTC's
        idea applied to pacing: one tenant's long prompt is not paid for by another
        tenant's wait). Its own prompt then counts as its debt, so each tenant goes at
        most once on a debt, and the debt grows past the pace by at most one prompt per
        tenant. (Borrowing only while the debt is under one iteration's allowance was
        tried: a heavy tenant's long prompt leaves a debt of several iterations, and
        the light tenant's requests still waited for it.)"""
        return self.balance != UNPACED and self.balance <= 0 and tenant not in self.debtors

    def spend(self, prompt_tokens: int, tenant: str = DEFAULT_TENANT) -> None:
        if self.balance != UNPACED:
            if self.balance > 0:  # a new debt (or none): only this spender can owe it
                self.debtors.clear()
            self.balance -= prompt_tokens
            self.debtors.add(tenant)


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
        self.prefill_credit = PrefillCredit()
        self.decoding = 0  # running requests past their first token (their TPOT runs)

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
                        (q.request.prompt_len, q.request.max_new_tokens)
                        for q in self.gate.head(now=s.timestamp)
                    ]
                    if wants_head
                    else (),
                    gpu=self.gpu_sample,
                )
            )
            self.prefill_credit.refill(self._prefill_allowance())
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
        self.prefill_credit = PrefillCredit()

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

    def _prefill_allowance(self) -> float:
        """Prompt tokens the gate may pass per engine iteration: the controller's pace,
        and never more than the engine's build prefills in one iteration when it says
        (`max_num_tokens`, less one token per decoding request). Prompt tokens past
        that wait inside the engine, whose context queue is first come first served,
        out of the admission order's reach (measured under `fair` with a small
        max_num_tokens: the light tenant then waited behind the heavy one's chunks).
        An unpaced controller stays unpaced."""
        allowance = getattr(self.controller, "prefill_tokens_per_step", UNPACED)
        per_iteration = getattr(self.engine, "max_num_tokens", None)
        if allowance != UNPACED and per_iteration:
            allowance = min(allowance, max(1.0, float(per_iteration - self.decoding)))
        return allowance

    def admission_block(self) -> str | None:
        """What holds the next admission back now: "limit" (the controller's in-flight
        limit is reached), "pacing" (the prefill credit is spent), or None. The gate's
        order only picks which waiting request goes once neither holds."""
        if len(self.running) >= self.controller.limit:
            return "limit"
        # prefill pacing (PrefillCredit): a prompt's prefill step lengthens the TPOT of
        # the requests decoding beside it, and only theirs; with none decoding, the
        # prompts go together (a burst into an idle engine is prefilled at once)
        if self.decoding and not self.prefill_credit.open and not self._borrows():
            return "pacing"
        return None

    def _borrows(self) -> bool:
        """Under an order that shares service by tenant (`fair`), the request admitted
        next may borrow against the spent credit when its tenant made none of the
        debt (PrefillCredit.may_borrow)."""
        if not self.gate.order.lends_prefill_credit:
            return False
        head = self.gate.peek(self.engine.now())
        return head is not None and self.prefill_credit.may_borrow(tenant_of(head.request))

    def _admit(self, now: float) -> None:
        credit = self.prefill_credit
        credit.follow(self._prefill_allowance())
        while self.admission_block() is None:
            item = self.gate.admit(now)
            if item is None:
                return
            req = item.request
            credit.spend(req.prompt_len, tenant_of(req))
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
            ttft = None
            if state.first_token_time is None:
                state.first_token_time = event.time
                self.decoding += 1
                ttft = event.time - state.arrival_time
            state.generated += len(event.token_ids)
            self.gate.on_tokens(event.request_id, len(event.token_ids), ttft)
        if event.finished:
            self._end(event.request_id, event)
        else:
            self._sinks[event.request_id].on_event(event, state)

    def _end(self, request_id: int, event: TokenEvent) -> None:
        state = self.running.pop(request_id)
        sink = self._sinks.pop(request_id)
        if state.first_token_time is not None:
            self.decoding -= 1
        state.finish_time = event.time
        state.finish_reason = event.finish_reason
        if event.finish_reason in (FinishReason.CANCELLED, FinishReason.STOPPED):
            self.counters.cancelled += 1
        elif event.finish_reason == FinishReason.ERROR:
            self.counters.failed += 1
        else:
            self.counters.completed += 1
        self.controller.on_request_finish(state)
        self.gate.on_finish(request_id, state.generated, state.prompt_len)
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

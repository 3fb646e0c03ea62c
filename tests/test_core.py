"""AdmissionGate and ServingCore: ordering, limits, cancellation, rejection, counters.

A tiny scripted engine stands in for an executor here (one token per request per
step); the real engines are tested in their own files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from dynabatch.controller.base import LimitDecision
from dynabatch.core import ServingCore
from dynabatch.engines.base import EngineError, KvCapacity
from dynabatch.gate import AdmissionGate
from dynabatch.types import FinishReason, GenerationRequest, IterationStats, TokenEvent
from stats_builder import iteration_stats


class OneTokenEngine:
    """Each step gives every submitted request one token; finishes at max_new_tokens."""

    max_batch_size = 64
    kv_capacity = KvCapacity(total_blocks=100, tokens_per_block=16)

    def __init__(self) -> None:
        self.t = 0.0
        self.live: dict[int, list] = {}
        self.events: list[TokenEvent] = []
        self.stats: list[IterationStats] = []
        self.submitted: list[int] = []
        self.fail_submit = False

    def submit(self, request: GenerationRequest) -> None:
        if self.fail_submit:
            raise EngineError("no room")
        self.submitted.append(request.request_id)
        self.live[request.request_id] = [request, 0]

    def cancel(self, request_id: int) -> None:
        if request_id in self.live:
            del self.live[request_id]
            self.events.append(
                TokenEvent(request_id, [], True, FinishReason.CANCELLED, None, self.t)
            )

    def step(self) -> None:
        self.t += 0.01
        for rid, entry in list(self.live.items()):
            req, n = entry
            entry[1] = n + 1
            done = entry[1] >= req.max_new_tokens
            self.events.append(
                TokenEvent(rid, [n], done, FinishReason.LENGTH if done else None, None, self.t)
            )
            if done:
                del self.live[rid]
        self.stats.append(
            iteration_stats(
                iter=len(self.stats),
                t=self.t,
                latency=10.0,
                total=100,
                gen=len(self.live),
                max_num_active_requests=self.max_batch_size,
            )
        )

    def poll_events(self, timeout: float = 0.0):
        out, self.events = self.events, []
        return out

    def drain_stats(self):
        out, self.stats = self.stats, []
        return out

    def now(self) -> float:
        return self.t

    def shutdown(self) -> None:
        pass


@dataclass
class FixedLimit:
    value: int
    name: str = "fixed"
    updates: int = 0
    finished: list = field(default_factory=list)

    def update(self, sample) -> int:
        self.updates += 1
        assert sample.running is not None
        return self.value

    def on_request_finish(self, state) -> None:
        self.finished.append(state.request_id)

    @property
    def limit(self) -> int:
        return self.value

    @property
    def decision(self) -> LimitDecision:
        return LimitDecision(self.value, {"fixed": self.value}, "fixed")


class Recorder:
    def __init__(self) -> None:
        self.events: dict[int, list[TokenEvent]] = {}

    def on_event(self, event, state) -> None:
        self.events.setdefault(event.request_id, []).append(event)

    def final(self, rid: int) -> TokenEvent:
        finals = [e for e in self.events[rid] if e.finished]
        assert len(finals) == 1, f"request {rid} got {len(finals)} final events"
        return finals[0]


def req(rid: int, n: int = 3, prompt: int = 4, priority: int = 0) -> GenerationRequest:
    return GenerationRequest(
        request_id=rid, prompt_ids=[1] * prompt, max_new_tokens=n, priority=priority
    )


def run_until_idle(core: ServingCore, engine: OneTokenEngine, steps: int = 200) -> None:
    for _ in range(steps):
        core.step()
        if core.idle:
            return
        engine.step()
    raise AssertionError("core did not go idle")


def test_gate_orders_by_priority_then_arrival():
    gate = AdmissionGate()
    for rid, prio in [(1, 0), (2, 5), (3, 0), (4, 5)]:
        assert gate.offer(req(rid, priority=prio), None, now=0.0) is None
    assert [gate.pop().request.request_id for _ in range(4)] == [2, 4, 1, 3]
    assert gate.pop() is None and len(gate) == 0


def test_gate_bounds_queue_and_expires_oldest():
    gate = AdmissionGate(max_queue_size=2, queue_timeout_s=1.0)
    assert gate.offer(req(1), None, 0.0) is None
    assert gate.offer(req(2), None, 0.5) is None
    refusal = gate.offer(req(3), None, 0.6)
    assert refusal and "max_queue_size=2" in refusal
    assert gate.oldest_wait(0.9) == pytest.approx(0.9)
    expired = gate.expire(1.2)
    assert [e.request.request_id for e in expired] == [1]
    assert gate.remove(2) is not None and len(gate) == 0 and gate.pop() is None


def test_core_admits_up_to_the_limit_and_serves_everyone():
    engine, rec = OneTokenEngine(), Recorder()
    core = ServingCore(engine, FixedLimit(2), AdmissionGate())
    for rid in range(5):
        core.submit(req(rid, n=3), rec)
    core.step()
    assert len(core.running) == 2 and len(core.gate) == 3
    peak = 0
    for _ in range(50):
        engine.step()
        core.step()
        peak = max(peak, len(engine.live))
        if core.idle:
            break
    assert peak <= 2
    for rid in range(5):
        final = rec.final(rid)
        assert final.finish_reason == FinishReason.LENGTH
        assert sum(len(e.token_ids) for e in rec.events[rid]) == 3
    c = core.counters
    assert (c.submitted, c.accepted, c.completed, c.rejected) == (5, 5, 5, 0)
    assert sorted(core.controller.finished) == list(range(5))


def test_core_rejects_what_can_never_fit_and_duplicates():
    engine, rec = OneTokenEngine(), Recorder()
    core = ServingCore(engine, FixedLimit(4), AdmissionGate(max_queue_size=1))
    core.submit(req(1, n=1, prompt=1600), rec)  # 1601 tokens > 1600 in the KV cache
    core.submit(req(2, n=0), rec)
    core.submit(req(3), rec)
    core.submit(req(3), rec)  # duplicate id while queued
    core._drain_inbox()
    assert "exceeds the KV cache (1600 tokens)" in rec.final(1).error
    assert "request_output_len must be >= 1" in rec.final(2).error
    assert "already" in [e for e in rec.events[3] if e.finished][0].error
    c = core.counters
    assert c.submitted == c.accepted + c.rejected == 4 and c.rejected == 3


def test_cancel_queued_and_running_requests():
    engine, rec = OneTokenEngine(), Recorder()
    core = ServingCore(engine, FixedLimit(1), AdmissionGate())
    core.submit(req(1, n=50), rec)
    core.submit(req(2, n=50), rec)
    core.step()
    engine.step()
    core.cancel(2)  # queued
    core.cancel(1)  # running: the engine answers with a final event
    run_until_idle(core, engine)
    assert rec.final(1).finish_reason == FinishReason.CANCELLED
    assert rec.final(2).finish_reason == FinishReason.CANCELLED
    assert 2 not in engine.submitted
    c = core.counters
    assert c.accepted == c.completed + c.cancelled + c.failed and c.cancelled == 2


def test_queue_timeout_and_engine_refusal_fail_cleanly():
    engine, rec = OneTokenEngine(), Recorder()
    core = ServingCore(engine, FixedLimit(1), AdmissionGate(queue_timeout_s=0.05))
    core.submit(req(1, n=20), rec)
    core.submit(req(2, n=20), rec)
    run_until_idle(core, engine)
    assert rec.final(1).finish_reason == FinishReason.LENGTH
    assert "queue timeout" in rec.final(2).error
    assert core.counters.timed_out == 1
    engine.fail_submit = True
    core.submit(req(3), rec)
    core.step()
    assert rec.final(3).finish_reason == FinishReason.ERROR and "no room" in rec.final(3).error
    assert not core.running


def test_fail_all_answers_every_request_once():
    engine, rec = OneTokenEngine(), Recorder()
    core = ServingCore(engine, FixedLimit(1), AdmissionGate())
    for rid in range(3):
        core.submit(req(rid, n=100), rec)
    core.step()
    engine.step()
    core.step()
    core.fail_all("engine stopped")
    for rid in range(3):
        assert rec.final(rid).error == "engine stopped"
    assert core.idle and core.counters.failed == 3


def test_gate_head_lists_the_next_requests_in_order():
    gate = AdmissionGate()
    for rid, prio in [(1, 0), (2, 0), (3, 9), (4, 0), (5, 0), (6, 0)]:
        gate.offer(req(rid, priority=prio), None, now=float(rid))
    gate.remove(2)
    assert [q.request.request_id for q in gate.head(4)] == [3, 1, 4, 5]
    assert [gate.pop().request.request_id for _ in range(2)] == [3, 1]


@dataclass
class HeadRecorder(FixedLimit):
    """A fixed limit that keeps the waiting head each update showed it."""

    wants_waiting_head = True
    heads: list = field(default_factory=list)

    def update(self, sample) -> int:
        self.heads.append(list(sample.waiting_head))
        return super().update(sample)


def test_the_controller_sees_the_aged_request_as_the_head_it_will_admit():
    # sjf would take the short request 3 first, but request 2 has waited past the aging
    # bound, so 2 goes next: the head the controller sizes the admission on (KV fit,
    # prefill allowance) must be 2, not the order's pick without aging
    from dynabatch.queue_order import ShortestJobOrder

    engine, rec = OneTokenEngine(), Recorder()
    controller = HeadRecorder(1)
    core = ServingCore(engine, controller, AdmissionGate(order=ShortestJobOrder(), aging_s=0.05))
    core.submit(req(1, n=100), rec)  # holds the only place
    core.step()
    core.submit(req(2, n=3, prompt=40), rec)
    engine.step()
    core.step()
    core.submit(req(3, n=3, prompt=4), rec)
    while engine.t < 0.1:  # request 2 waits past 0.05 s
        engine.step()
        core.step()
    assert controller.heads[-1][0] == (40, 3)
    # before the bound, the order's own pick led
    assert (4, 3) in [h[0] for h in controller.heads if h]


def test_admission_block_names_what_holds_the_gate():
    engine, rec = OneTokenEngine(), Recorder()
    controller = FixedLimit(1)
    core = ServingCore(engine, controller, AdmissionGate())
    assert core.admission_block() is None
    core.submit(req(1, n=100), rec)
    core.submit(req(2, n=100), rec)
    core.step()
    assert core.admission_block() == "limit" and len(core.gate) == 1
    # a wider limit with prefill pacing at 1 prompt token per iteration: request 2
    # (4 prompt tokens) goes on the full bucket, and its debt holds request 3 back
    controller.value = 8
    controller.prefill_tokens_per_step = 1.0  # type: ignore[attr-defined]
    engine.step()
    core.step()
    assert 2 in core.running
    core.submit(req(3), rec)
    engine.step()
    core.step()
    assert core.admission_block() == "pacing" and 3 in core.gate


def test_replace_engine_serves_the_queue_on_the_new_engine_with_the_new_controller():
    old, rec = OneTokenEngine(), Recorder()
    core = ServingCore(old, FixedLimit(1), AdmissionGate())
    core.submit(req(1, n=100), rec)
    core.submit(req(2, n=3), rec)  # waits behind request 1 (limit 1)
    core.step()
    with pytest.raises(RuntimeError, match="still on the old engine"):
        core.replace_engine(OneTokenEngine(), FixedLimit(4))
    core.fail_all("engine fault")  # what the serving loop does first
    core.submit(req(3, n=3), rec)
    new, fresh = OneTokenEngine(), FixedLimit(4)
    core.replace_engine(new, fresh)
    assert core.engine is new and core.controller is fresh and core.last_stats is None
    run_until_idle(core, new)
    assert rec.final(1).error == "engine fault"
    assert new.submitted == [3] and rec.final(3).finish_reason == FinishReason.LENGTH
    assert fresh.updates > 0 and old.submitted == [1]

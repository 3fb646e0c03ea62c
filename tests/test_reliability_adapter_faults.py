"""Faults through both TensorRT-LLM adapters (Executor API and LLM API) on the stand-in,
driven by the serving code the model runs (ServingCore + ServingLoop with its
watchdog); recovery rebuilds engine and controller through the runtime factory (`runtime`), as
the model's `_recover` does.

Faults: error responses (`has_error()` on one request), a forward-pass failure (every
active request answered with an error), a stats gap (no iteration stats for a while)
and a stalled engine (no response, no stats: the watchdog must fire). Under each:
every accepted request gets exactly one final event, the counters reconcile, the KV
blocks return to 0, and the engine serves again afterwards.
"""

from __future__ import annotations

import threading
import time

import pytest
from dynabatch.config import load_config
from dynabatch.runtime import build_engine_and_controller, build_runtime
from dynabatch.serving import ServingLoop, TritonSink
from dynabatch.types import FinishReason, GenerationRequest
from stand_in.activate import stand_in_trtllm  # noqa: F401  (a pytest fixture)
from stand_in.harness import checkpoint_dir, engine_dir

ADAPTERS = ("trtllm_executor", "trtllm_llmapi")
WATCHDOG_S = 0.5


def _params(adapter: str, tmp_path) -> dict:
    """config.pbtxt parameters of a model served through `adapter` on the stand-in."""
    common = {"engine": adapter, "max_batch_size": "8", "batch_policy": "static"}
    if adapter == "trtllm_executor":
        return {**common, "gpt_model_path": engine_dir(tmp_path)}
    return {**common, "gpt_model_path": checkpoint_dir(tmp_path), "stats_check_period_ms": "5"}


def sim_of(engine):
    """The stand-in's scheduler behind either adapter (its fault hooks live there)."""
    ex = getattr(engine, "_ex", None)
    return ex.stand_in_engine if ex is not None else engine._llm._sim


FINAL = 1  # TRITONSERVER_RESPONSE_COMPLETE_FINAL


class Final:
    def __init__(self, error: str | None, reason: FinishReason | None) -> None:
        self.error, self.finish_reason = error, reason


class Sink:
    """What Triton's response sender of one request receives, through the model's own
    TritonSink: tokens, and the final response (a second final would be counted in
    `extra_finals`; it must never happen)."""

    def __init__(self, done: threading.Condition) -> None:
        self.done = done
        self.tokens: list[int] = []
        self.final: Final | None = None
        self.extra_finals = 0
        self.pending_reason: FinishReason | None = None
        self.triton_sink = TritonSink(
            self,
            streaming=True,
            final_flag=FINAL,
            make_response=lambda tokens: ("data", list(tokens), None),
            make_error=lambda message, reason: ("error", message, reason),
        )

    # the response-sender face TritonSink talks to
    def is_cancelled(self) -> bool:
        return False

    def send(self, response=None, flags: int = 0) -> None:
        with self.done:
            error = reason = None
            if response is not None and response[0] == "data":
                self.tokens.extend(response[1])
            elif response is not None:
                error, reason = response[1], response[2] or FinishReason.ERROR
            if flags & FINAL:
                if self.final is not None:
                    self.extra_finals += 1
                self.final = Final(error, reason if error else FinishReason.LENGTH)
                self.done.notify_all()


class Rig:
    """The serving loop over one adapter, built and rebuilt by the runtime factory."""

    def __init__(self, adapter: str, params: dict) -> None:
        self.cfg = load_config(params)
        self.core = build_runtime(self.cfg).core
        self.rebuilds: list[str] = []
        self.loop = ServingLoop(
            self.core, poll_s=0.01, watchdog_s=WATCHDOG_S, recover=self._recover
        )
        self.done = threading.Condition()
        self.sinks: dict[int, Sink] = {}
        self.next_id = 1
        self.loop.start()

    def _recover(self, reason: str) -> None:
        """As TritonPythonModel._recover: shut the old engine down, build engine and
        controller again through the runtime factory, serve on with them."""
        self.core.engine.shutdown()
        self.core.replace_engine(*build_engine_and_controller(self.cfg))
        self.rebuilds.append(reason)

    def submit(self, n: int, output_len: int) -> list[int]:
        ids = []
        for _ in range(n):
            rid, self.next_id = self.next_id, self.next_id + 1
            self.sinks[rid] = Sink(self.done)
            req = GenerationRequest(rid, [5, 6, 7], output_len, streaming=True)
            self.loop.submit(req, self.sinks[rid].triton_sink)
            ids.append(rid)
        return ids

    def wait(self, predicate, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self.done:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, "condition not met in time"
                self.done.wait(min(left, 0.05))

    def finals(self, ids) -> list:
        return [self.sinks[i].final for i in ids]

    def all_final(self, ids) -> bool:
        return all(self.sinks[i].final is not None for i in ids)

    def check_exactly_once_and_reconciled(self) -> None:
        assert all(s.final is not None for s in self.sinks.values()), "a request got no final"
        assert sum(s.extra_finals for s in self.sinks.values()) == 0, "a second final"
        c = self.core.counters
        assert c.submitted == c.accepted + c.rejected == len(self.sinks)
        assert c.accepted == c.completed + c.cancelled + c.failed

    def serves_again(self) -> None:
        ids = self.submit(3, 5)
        self.wait(lambda: self.all_final(ids))
        for i in ids:
            f = self.sinks[i].final
            assert f.error is None and f.finish_reason == FinishReason.LENGTH
            assert len(self.sinks[i].tokens) == 5

    def kv_back_to_zero(self) -> None:
        sim = sim_of(self.core.engine)
        blocks = sim.exe.blocks  # the KV pool behind the stand-in
        deadline = time.monotonic() + 10
        while blocks.free_blocks != blocks.total_blocks or sim.reqs:
            assert time.monotonic() < deadline, "KV blocks not returned"
            time.sleep(0.02)

    def close(self) -> None:
        self.loop.close("test over")
        self.core.engine.shutdown()


@pytest.fixture(params=ADAPTERS)
def rig(request, stand_in_trtllm, tmp_path):
    r = Rig(request.param, _params(request.param, tmp_path))
    yield r
    r.close()


def test_error_response_reaches_only_its_request(rig):
    """One request the engine answers with has_error() (prompt + output beyond
    max_seq_len on the stand-in); its neighbours finish normally."""
    ok = rig.submit(2, 6)
    rid = rig.next_id
    rig.next_id += 1
    rig.sinks[rid] = Sink(rig.done)
    rig.loop.submit(
        GenerationRequest(rid, [5] * 3000, 6, streaming=True), rig.sinks[rid].triton_sink
    )
    rig.wait(lambda: rig.all_final(ok + [rid]))
    bad = rig.sinks[rid].final
    assert bad.finish_reason == FinishReason.ERROR and bad.error
    assert all(f.error is None for f in rig.finals(ok))
    rig.check_exactly_once_and_reconciled()
    rig.serves_again()
    rig.kv_back_to_zero()


def test_forward_pass_failure_fails_active_requests_once_then_serves(rig):
    ids = rig.submit(4, 2000)
    rig.wait(lambda: all(len(rig.sinks[i].tokens) > 0 for i in ids))
    sim_of(rig.core.engine).fail_next_iteration("CUDA error: an illegal memory access")
    rig.wait(lambda: rig.all_final(ids))
    for f in rig.finals(ids):
        assert f.finish_reason == FinishReason.ERROR and "illegal memory access" in f.error
    rig.check_exactly_once_and_reconciled()
    assert rig.core.counters.failed == 4
    rig.serves_again()
    rig.kv_back_to_zero()


def test_stats_gap_does_not_fail_requests_or_trip_the_watchdog(rig, monkeypatch):
    """No iteration stats for a while (tokens still flow): nothing fails, no rebuild."""
    sim = sim_of(rig.core.engine)
    taken = threading.Event()
    real_take = sim.take_stats

    def no_stats():
        real_take()  # the records are lost, as in a gap of get_latest_iteration_stats
        taken.set()
        return []

    monkeypatch.setattr(sim, "take_stats", no_stats)
    ids = rig.submit(4, 150)  # several watchdog periods long at the stand-in's pace
    rig.wait(lambda: rig.all_final(ids), timeout_s=30)
    assert taken.is_set()
    assert all(f.error is None and f.finish_reason == FinishReason.LENGTH for f in rig.finals(ids))
    assert rig.rebuilds == [] and rig.loop.faults == 0
    monkeypatch.setattr(sim, "take_stats", real_take)
    rig.check_exactly_once_and_reconciled()
    rig.serves_again()
    rig.kv_back_to_zero()


def test_stalled_engine_trips_the_watchdog_and_recovers_through_the_factory(rig):
    """The engine stops answering (no responses, no stats) while it holds requests: the
    watchdog fails them once, the factory builds a new engine, serving resumes."""
    ids = rig.submit(3, 2000)
    rig.wait(lambda: all(len(rig.sinks[i].tokens) > 0 for i in ids))
    stalled = rig.core.engine
    sim_of(stalled).stall()
    rig.wait(lambda: rig.all_final(ids), timeout_s=WATCHDOG_S * 10)
    for f in rig.finals(ids):
        assert f.finish_reason == FinishReason.ERROR and "engine stalled" in f.error
    rig.wait(lambda: rig.rebuilds)  # recovery runs right after the requests are failed
    assert len(rig.rebuilds) == 1 and "engine stalled" in rig.rebuilds[0]
    assert rig.core.engine is not stalled
    rig.check_exactly_once_and_reconciled()
    rig.serves_again()
    rig.kv_back_to_zero()

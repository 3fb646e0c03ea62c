"""SimulatedExecutor on its real-time driver thread."""

import threading
import time

import pytest
from dynabatch.engines.base import EngineError
from dynabatch.engines.simulated import SimulatedExecutor, from_parameters
from dynabatch.types import FinishReason, GenerationRequest


def collect(eng, n_final, limit_s=10.0):
    events, deadline = [], time.monotonic() + limit_s
    while sum(e.finished for e in events) < n_final and time.monotonic() < deadline:
        events += eng.poll_events(0.1)
    return events


@pytest.fixture
def engines():
    made = []
    yield made
    for e in made:
        e.shutdown()


def test_serves_concurrent_submitters_and_shuts_down_fast(engines):
    eng = SimulatedExecutor("llama-2-7b-h100", max_batch_size=32)
    engines.append(eng)
    eng.start_realtime(0.2)

    def worker(base):
        for r in range(base, base + 10):
            eng.submit(GenerationRequest(r, range(50), 8, streaming=r % 2 == 0))

    threads = [threading.Thread(target=worker, args=(b,)) for b in (0, 100, 200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = collect(eng, 30)
    finals = [e for e in events if e.finished]
    assert len(finals) == 30 and len({e.request_id for e in finals}) == 30
    per = {}
    for e in events:
        per[e.request_id] = per.get(e.request_id, 0) + len(e.token_ids)
    assert set(per.values()) == {8}
    assert all(0 <= e.time <= eng.now() for e in events)  # simulated seconds on the wall clock
    eng.shutdown()  # joins the driver thread
    assert not eng._driver._thread.is_alive()


def test_idle_poll_waits_for_timeout_and_does_not_step(engines):
    eng = SimulatedExecutor("zero-latency", max_batch_size=4)
    engines.append(eng)
    eng.start_realtime(1.0)
    t0 = time.monotonic()
    assert eng.poll_events(0.2) == []
    assert time.monotonic() - t0 >= 0.18  # it waited (no event could arrive)
    assert eng.drain_stats() == [] and eng._iter == 0
    with pytest.raises(EngineError):
        eng.step()


def test_step_wall_time_follows_time_scale(engines):
    eng = SimulatedExecutor("llama-2-7b-a100-80gb", max_batch_size=8)
    engines.append(eng)
    eng.start_realtime(2.0)
    eng.submit(GenerationRequest(1, range(100), 12, streaming=True))
    collect(eng, 1)
    stats = eng.drain_stats()
    assert len(stats) == 12
    gaps = [
        (b.timestamp - a.timestamp) / (b.iter_latency_ms / 1e3) for a, b in zip(stats, stats[1:])
    ]
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(1.0, abs=0.3)
    # iter_latency_ms is simulated GPU time (~9.6 ms for one decode token on this
    # profile), whatever the scale; the wall clock ran twice as long
    assert 7 < stats[-1].iter_latency_ms < 13
    assert eng.now() == pytest.approx((time.monotonic() - eng._wall_origin) / 2.0, abs=0.05)


def test_fault_raise_surfaces_in_poll_and_engine_recovers(engines):
    eng = SimulatedExecutor("zero-latency", max_batch_size=4)
    engines.append(eng)
    eng.start_realtime(1.0)
    eng.inject_fault("raise", after_iterations=0, message="gpu fell off the bus")
    eng.submit(GenerationRequest(1, range(10), 1000))
    with pytest.raises(EngineError, match="fell off"):
        for _ in range(50):
            eng.poll_events(0.1)
    events = eng.poll_events(0.5)
    assert [(e.request_id, e.finish_reason) for e in events] == [(1, FinishReason.ERROR)]
    eng.submit(GenerationRequest(2, range(10), 3))
    assert collect(eng, 1)[-1].finish_reason == FinishReason.LENGTH


def test_stall_and_cancel_in_real_time(engines):
    eng = from_parameters({"sim_profile": "zero-latency"}, max_batch_size=4, realtime=True)
    engines.append(eng)
    eng.inject_fault("stall", after_iterations=0, stall_s=0.3)
    t0 = time.monotonic()
    eng.submit(GenerationRequest(1, range(10), 100_000, streaming=True))
    first = collect(eng, 0, 0.0) or eng.poll_events(2.0)
    assert first and time.monotonic() - t0 >= 0.28
    eng.cancel(1)
    events = collect(eng, 1)
    assert events[-1].finish_reason == FinishReason.CANCELLED
    assert eng.blocks.held(1) == 0

"""SimulatedExecutor on the virtual clock: events, chunking, policies, cancel, faults."""

import pytest
from dynabatch.engines.base import Engine, EngineError
from dynabatch.engines.simulated import SIMULATED_PARAMS, SimulatedExecutor, from_parameters
from dynabatch.engines.simulated.tokens import output_vocab, token_at, token_base
from dynabatch.params import ConfigError
from dynabatch.types import FinishReason, GenerationRequest

P7 = "llama-2-7b-a100-80gb"


def run(eng, limit=100_000):
    events, stats = [], []
    for _ in range(limit):
        if not eng.has_work:
            break
        eng.step()
        events += eng.poll_events()
        stats += eng.drain_stats()
    assert not eng.has_work
    return events, stats


def req(rid, prompt, max_new, **kw):
    return GenerationRequest(rid, range(prompt), max_new, **kw)


def test_implements_engine_protocol_and_capacity():
    eng = SimulatedExecutor(
        P7, max_batch_size=4, tokens_per_block=32, max_tokens_in_paged_kv_cache=1000
    )
    assert isinstance(eng, Engine)
    assert eng.kv_capacity.total_blocks == 1000 // 32 and eng.kv_capacity.tokens_per_block == 32
    half = SimulatedExecutor(P7, max_batch_size=4, kv_cache_free_gpu_mem_fraction=0.45)
    full = SimulatedExecutor(P7, max_batch_size=4, kv_cache_free_gpu_mem_fraction=0.9)
    assert abs(half.kv_capacity.total_blocks * 2 - full.kv_capacity.total_blocks) <= 2


def test_virtual_clock_advances_by_latency_and_idles():
    eng = SimulatedExecutor(P7, max_batch_size=4)
    assert eng.step() is None and eng.now() == 0.0
    eng.advance_to(5.0)
    eng.submit(req(1, 100, 3, streaming=True))
    s1 = eng.step()
    assert s1.num_context_requests == 1 and s1.num_ctx_tokens == 100
    assert eng.now() == pytest.approx(5.0 + s1.iter_latency_ms / 1e3) and s1.timestamp == eng.now()
    ev = eng.poll_events()
    assert len(ev) == 1 and len(ev[0].token_ids) == 1 and ev[0].time == eng.now()
    events, _ = run(eng)
    assert [len(e.token_ids) for e in events] == [1, 1] and events[-1].finished
    assert events[-1].finish_reason == FinishReason.LENGTH
    eng.advance_to(1.0)  # never backwards
    assert eng.now() > 5.0


def test_non_streaming_gets_first_token_then_final():
    eng = SimulatedExecutor(P7, max_batch_size=4)
    eng.submit(req(7, 50, 40, true_output_len=25))
    events, _ = run(eng)
    assert [len(e.token_ids) for e in events] == [1, 24]
    assert [e.finished for e in events] == [False, True] and events[
        -1
    ].finish_reason == FinishReason.EOS
    base = token_base(0, 7)
    assert events[0].token_ids + events[1].token_ids == [
        token_at(base, i, output_vocab(32000)) for i in range(25)
    ]


def test_end_id_stops_generation():
    base = token_base(0, 3)
    end = token_at(base, 9, output_vocab(32000))
    first = next(i for i in range(100) if token_at(base, i, output_vocab(32000)) == end)
    eng = SimulatedExecutor(P7, max_batch_size=2)
    eng.submit(req(3, 10, 100, end_id=end))
    events, _ = run(eng)
    out = [t for e in events for t in e.token_ids]
    assert len(out) == first + 1 and out[-1] == end
    assert events[-1].finish_reason == FinishReason.END_ID


def test_chunked_prefill_spreads_a_long_prompt():
    eng = SimulatedExecutor(P7, max_batch_size=4, max_num_tokens=256, tokens_per_block=64)
    eng.submit(req(1, 1000, 2))
    _, stats = run(eng)
    ctx = [s.num_ctx_tokens for s in stats if s.num_ctx_tokens]
    assert ctx == [256, 256, 256, 232] and all(
        s.num_ctx_tokens + s.num_gen_tokens <= 256 for s in stats
    )
    eng2 = SimulatedExecutor(P7, max_batch_size=4, max_num_tokens=256, enable_chunked_context=False)
    with pytest.raises(EngineError, match="max_num_tokens"):
        eng2.submit(req(1, 1000, 2))


def test_batch_size_limit_and_queue():
    eng = SimulatedExecutor(P7, max_batch_size=3)
    for r in range(5):
        eng.submit(req(r, 20, 10))
    s = eng.step()
    assert (
        s.num_active_requests == 3 and s.num_queued_requests == 2 and s.max_num_active_requests == 3
    )


def _overflow_workload(policy):
    eng = SimulatedExecutor(
        P7,
        max_batch_size=16,
        tokens_per_block=16,
        capacity_policy=policy,
        max_tokens_in_paged_kv_cache=2048,
    )
    for r in range(12):
        eng.submit(req(r, 100, 300, true_output_len=200 + r))
    return eng, run(eng)


def test_max_utilization_pauses_and_recomputes_but_finishes_all():
    eng, (events, stats) = _overflow_workload("max_utilization")
    assert (
        sum(s.num_new_pauses for s in stats) > 0 and max(s.num_paused_requests for s in stats) > 0
    )
    assert stats[-1].total_recomputed_tokens > 0
    assert max(s.used_num_blocks for s in stats) == eng.kv_capacity.total_blocks
    done = {e.request_id: e for e in events if e.finished}
    assert len(done) == 12 and all(e.finish_reason == FinishReason.EOS for e in done.values())


def test_guaranteed_no_evict_never_pauses_and_reserves():
    eng, (events, stats) = _overflow_workload("guaranteed_no_evict")
    assert all(s.num_new_pauses == 0 and s.num_paused_requests == 0 for s in stats)
    # 2048 tokens / (100 + 300) reserved = 5 requests at most in flight
    assert max(s.num_active_requests for s in stats) == 5
    assert len([e for e in events if e.finished]) == 12


def test_cancel_frees_blocks_at_next_iteration():
    eng = SimulatedExecutor(P7, max_batch_size=4, max_num_tokens=128, tokens_per_block=16)
    eng.submit(req(1, 500, 50, streaming=True))
    eng.submit(req(2, 40, 50))
    eng.step()
    assert eng.blocks.held(1) > 0
    eng.cancel(1)
    eng.cancel(999)  # unknown: ignored
    eng.step()
    assert eng.blocks.held(1) == 0
    events, _ = run(eng)
    events = eng.poll_events() + events
    cancelled = [e for e in events if e.request_id == 1]
    assert len(cancelled) == 1 and cancelled[0].finish_reason == FinishReason.CANCELLED


def test_cancel_of_a_queued_request_with_no_other_work():
    eng = SimulatedExecutor(P7, max_batch_size=1)
    eng.submit(req(1, 10, 5))
    eng.cancel(1)
    assert eng.step() is None
    (ev,) = eng.poll_events()
    assert ev.finished and ev.finish_reason == FinishReason.CANCELLED and not eng.has_work


def test_deterministic_for_a_seed():
    def once(seed):
        eng = SimulatedExecutor(
            P7, max_batch_size=8, tokens_per_block=16, max_tokens_in_paged_kv_cache=1024, seed=seed
        )
        for r in range(10):
            eng.submit(req(r, 30 + 17 * r, 80, streaming=r % 2 == 0, true_output_len=40 + r))
        events, stats = run(eng)
        return [(e.request_id, e.token_ids, e.finished, e.time) for e in events], [
            (s.iter_latency_ms, s.used_num_blocks, s.num_new_pauses) for s in stats
        ]

    assert once(1) == once(1)
    assert once(1)[0] != once(2)[0]


def test_rejects_invalid_and_duplicate_requests():
    eng = SimulatedExecutor(P7, max_batch_size=2, max_tokens_in_paged_kv_cache=640)
    with pytest.raises(EngineError, match="exceeds the KV cache"):
        eng.submit(req(1, 600, 100))
    eng.submit(req(2, 10, 5))
    with pytest.raises(EngineError, match="already in flight"):
        eng.submit(req(2, 10, 5))
    run(eng)
    eng.submit(req(2, 10, 5))  # the id is free again once finished


def test_fault_raise_fails_everything_then_recovers():
    eng = SimulatedExecutor(P7, max_batch_size=4)
    for r in range(3):
        eng.submit(req(r, 20, 50))
    eng.inject_fault("raise", after_iterations=2, message="boom")
    eng.step(), eng.step()
    eng.poll_events()
    with pytest.raises(EngineError, match="boom"):
        eng.step()
    finals = eng.poll_events()
    assert sorted(e.request_id for e in finals) == [0, 1, 2]
    assert all(
        e.finished and e.finish_reason == FinishReason.ERROR and e.error == "boom" for e in finals
    )
    assert eng.blocks.free_blocks == eng.blocks.total_blocks and not eng.has_work
    eng.submit(req(5, 20, 3))
    events, _ = run(eng)
    assert events[-1].finish_reason == FinishReason.LENGTH


def test_fault_stall_lengthens_one_iteration():
    eng = SimulatedExecutor(P7, max_batch_size=4)
    eng.submit(req(1, 20, 5))
    eng.inject_fault("stall", after_iterations=1, stall_s=2.0)
    lat = [eng.step().iter_latency_ms for _ in range(3)]
    assert lat[1] > 2000 > lat[0] and lat[2] < 100


def test_shutdown_fails_held_requests():
    eng = SimulatedExecutor(P7, max_batch_size=4)
    eng.submit(req(1, 20, 5))
    eng.shutdown()
    (ev,) = eng.poll_events()
    assert ev.finish_reason == FinishReason.ERROR
    with pytest.raises(EngineError):
        eng.submit(req(2, 20, 5))


def test_from_parameters_reads_config_strings():
    eng = from_parameters(
        {
            "sim_profile": "llama-2-13b-a100-40gb",
            "batch_scheduler_policy": "guaranteed_no_evict",
            "max_tokens_in_paged_kv_cache": "4096",
            "tokens_per_block": "32",
            "enable_chunked_context": "false",
            "max_num_tokens": "2048",
            "sim_seed": "3",
        },
        max_batch_size=16,
        realtime=False,
    )
    assert eng.kv_capacity.total_blocks == 128 and eng.kv_capacity.tokens_per_block == 32
    assert (
        eng.sched.no_evict and not eng.sched.chunked and eng.seed == 3 and eng.max_batch_size == 16
    )
    default = from_parameters({}, max_batch_size=8, realtime=False)
    assert default.profile.name == "llama-2-13b-a100-40gb" and not default.sched.no_evict
    with pytest.raises(ConfigError, match="sim_profile"):
        from_parameters({"sim_profile": "gpt-5"}, max_batch_size=8, realtime=False)
    with pytest.raises(ConfigError, match="batch_scheduler_policy"):
        from_parameters({"batch_scheduler_policy": "fifo"}, max_batch_size=8, realtime=False)
    assert {s.name for s in SIMULATED_PARAMS} >= {
        "sim_profile",
        "sim_time_scale",
        "sim_seed",
        "batch_scheduler_policy",
        "max_tokens_in_paged_kv_cache",
        "kv_cache_free_gpu_mem_fraction",
        "enable_chunked_context",
        "max_num_tokens",
        "tokens_per_block",
    }

"""TensorRT-LLM 1.2's capacity rules as ported in the simulated scheduler.

Small caches (tokens_per_block 4) so each rule shows in a few iterations."""

from dynabatch.engines.simulated import SimulatedExecutor
from dynabatch.types import GenerationRequest

TPB = 4


def engine(cache_tokens, policy="max_utilization", **kw):
    kw.setdefault("max_num_tokens", 64)
    return SimulatedExecutor(
        "zero-latency",
        max_batch_size=8,
        tokens_per_block=TPB,
        capacity_policy=policy,
        max_tokens_in_paged_kv_cache=cache_tokens,
        **kw,
    )


def seq(eng, rid):
    return eng._seqs[rid]


def step_until(eng, cond, limit=500):
    for _ in range(limit):
        stats = eng.step()
        eng.blocks.check()
        if cond(stats):
            return stats
    raise AssertionError("condition never met")


def test_pause_takes_the_last_started_request_and_its_output_joins_the_prompt():
    eng = engine(32)  # 8 blocks
    eng.submit(GenerationRequest(0, range(8), 20))
    eng.submit(GenerationRequest(1, range(8), 20))
    stats = step_until(eng, lambda s: s.num_new_pauses > 0)
    older, younger = seq(eng, 0), seq(eng, 1)
    assert stats.num_new_pauses == 1 and stats.num_paused_requests == 1
    assert younger.was_paused and not younger.started and eng.blocks.held(1) == 0
    assert older.started and eng.blocks.held(0) > 0
    assert younger.ctx_len == 8 + younger.generated and younger.generated > 1
    nxt = eng.step()  # paused in the last iteration, not in this one
    assert nxt.num_paused_requests == 0 and nxt.num_active_requests == 2
    # it resumes once the older one finished, prefilling prompt + output again
    stats = step_until(eng, lambda s: s.num_ctx_tokens > 0)
    assert stats.num_ctx_tokens == younger.ctx_len
    assert stats.total_recomputed_tokens == younger.recompute_mark > 0


def test_a_request_paused_mid_prefill_loses_its_progress():
    eng = engine(48, max_num_tokens=8)  # 12 blocks; prefill 8 tokens per iteration at most
    eng.submit(GenerationRequest(0, range(16), 30))
    step_until(eng, lambda s: seq(eng, 0).generated > 0)
    eng.submit(GenerationRequest(1, range(28), 4))  # 7 blocks, prefilled in chunks
    stats = step_until(eng, lambda s: s.num_new_pauses > 0)
    victim = seq(eng, 1)
    assert 0 < victim.recompute_mark < victim.ctx_len  # it was mid-prefill
    assert victim.prefilled == 0 and victim.generated == 0 and victim.ctx_len == 28
    assert stats.num_gen_requests == 1  # the older request got its block


def test_admission_needs_blocks_for_the_whole_prompt():
    eng = engine(64)  # 16 blocks
    eng.submit(GenerationRequest(0, range(40), 8))  # 10 blocks, then up to 12
    eng.step()
    eng.submit(GenerationRequest(1, range(40), 8))  # needs 10 blocks; 6 are free
    stats = eng.step()
    assert stats.num_context_requests == 0 and stats.num_queued_requests == 1
    assert not seq(eng, 1).started
    # the what-if: blocks chunk by chunk lets the same prompt start at once
    what_if = engine(64, context_blocks="chunk", max_num_tokens=16)
    what_if.submit(GenerationRequest(0, range(40), 8))
    for _ in range(3):
        what_if.step()
    what_if.submit(GenerationRequest(1, range(40), 8))
    stats = what_if.step()
    assert stats.num_context_requests == 1 and seq(what_if, 1).started


def test_an_older_paused_request_evicts_younger_started_ones_to_come_back():
    # r0 and r2 run; r1 was paused. When r1 (older than r2) is next in line and its
    # whole context does not fit, the scheduler pauses r2, the last started request.
    eng = engine(64, max_num_tokens=64)
    for rid, prompt in ((0, 16), (1, 16), (2, 8)):
        eng.submit(GenerationRequest(rid, range(prompt), 24))
    eng.step()
    eng._drain_inbox()
    sched = eng.sched
    r1, r2 = seq(eng, 1), seq(eng, 2)
    sched._pause(r1)  # as if paused earlier; r2 started before r1 could come back
    r1.ctx_len = 44  # grown by its output: 11 blocks
    # r0 takes one block this iteration; what is left does not hold r1, r2's blocks do
    free_after_r0 = eng.blocks.free_blocks - 1
    assert free_after_r0 < 11 <= free_after_r0 + eng.blocks.held(2)
    stats = eng.step()
    assert stats.num_new_pauses == 1 and r2.was_paused and not r2.started
    assert r1.started and r1.prefilled > 0  # came back in the same iteration


def test_guaranteed_no_evict_reserves_to_completion_head_of_line():
    eng = engine(64, policy="guaranteed_no_evict")  # 16 blocks
    eng.submit(GenerationRequest(0, range(8), 24))  # reserves 8 blocks
    eng.submit(GenerationRequest(1, range(8), 40))  # needs 12 > 8 left: waits
    eng.submit(GenerationRequest(2, range(4), 4))  # would fit, but waits behind r1
    stats = eng.step()
    assert stats.num_context_requests == 1 and stats.num_queued_requests == 2
    step_until(eng, lambda s: seq(eng, 1).started or seq(eng, 2).started)
    assert seq(eng, 1).started  # r2 never overtook r1
    assert 0 not in eng._seqs  # r1 came in only when r0's reservation was returned

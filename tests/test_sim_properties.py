"""Property tests on the block manager and the in-flight scheduler (virtual clock)."""

from dynabatch.engines.simulated import SimulatedExecutor
from dynabatch.engines.simulated.kv_cache import BlockManager
from dynabatch.engines.simulated.tokens import output_vocab, token_base, tokens_range
from dynabatch.types import FinishReason, GenerationRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TPB = 16
CAPACITY_TOKENS = 1024  # 64 blocks: small enough that max_utilization overflows often

request_st = st.tuples(
    st.integers(1, 300),  # prompt length
    st.integers(1, 200),  # max new tokens
    st.one_of(st.none(), st.integers(1, 250)),  # hidden true length
    st.booleans(),  # streaming
    st.one_of(st.none(), st.integers(0, 60)),  # cancel after this many iterations
    st.integers(0, 8),  # arrives after this many iterations
)
config_st = st.fixed_dictionaries(
    dict(
        policy=st.sampled_from(["max_utilization", "guaranteed_no_evict"]),
        max_batch_size=st.integers(1, 12),
        max_num_tokens=st.sampled_from([16, 48, 128, 512]),
        chunked=st.booleans(),
    )
)


def _shortfall(engine):
    """Whether walking the active list with each request's one-step block need (the
    max_utilization rule) runs out of free blocks or batch slots somewhere."""
    sched = engine.sched
    room = max(0, sched.max_batch_size - len(sched.active))
    walk = list(sched.active) + list(sched.queue)[:room]
    free, count = engine.blocks.free_blocks, 0
    for s in walk:
        if s.started and s.prefilled >= s.ctx_len:
            need = 1 if s.kv_len % TPB == 0 else 0
        else:
            need = 0 if s.started else -(-s.ctx_len // TPB)
        if need > free or count >= sched.max_batch_size:
            return True
        free -= need
        count += 1
    return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=st.lists(request_st, min_size=1, max_size=14), cfg=config_st, seed=st.integers(0, 3))
def test_scheduler_invariants(reqs, cfg, seed):
    eng = SimulatedExecutor(
        "llama-2-7b-a100-80gb",
        max_batch_size=cfg["max_batch_size"],
        max_num_tokens=cfg["max_num_tokens"],
        tokens_per_block=TPB,
        capacity_policy=cfg["policy"],
        max_tokens_in_paged_kv_cache=CAPACITY_TOKENS,
        enable_chunked_context=cfg["chunked"],
        seed=seed,
    )
    no_evict = cfg["policy"] == "guaranteed_no_evict"
    expected, submitted, cancel_at = {}, set(), {}
    tokens: dict[int, list[int]] = {}
    finals: dict[int, list] = {}
    ever_paused = set()
    for it in range(5000):
        for rid, (prompt, max_new, true_len, streaming, cancel, arrive) in enumerate(reqs):
            if arrive == it:
                if not cfg["chunked"] and prompt > cfg["max_num_tokens"]:
                    continue  # refused at submit (tested elsewhere)
                eng.submit(
                    GenerationRequest(
                        rid, range(prompt), max_new, streaming=streaming, true_output_len=true_len
                    )
                )
                submitted.add(rid)
                expected[rid] = min(max_new, true_len) if true_len else max_new
                if cancel is not None:
                    cancel_at[it + cancel] = cancel_at.get(it + cancel, []) + [rid]
        for rid in cancel_at.pop(it, []):
            eng.cancel(rid)
        if not eng.has_work and it > 8 and not cancel_at:
            break
        eng._drain_inbox()  # submissions and cancels land before the walk is checked
        short = _shortfall(eng)
        stats = eng.step()
        eng.blocks.check()
        if stats is not None:
            assert stats.used_num_blocks + stats.free_num_blocks == stats.max_num_blocks
            assert stats.num_ctx_tokens + stats.num_gen_tokens <= cfg["max_num_tokens"]
            if no_evict:
                assert stats.num_new_pauses == 0 and stats.num_paused_requests == 0
            elif stats.num_new_pauses:
                assert short  # paused only because a request's one-step blocks ran out
            ever_paused.update(s.rid for s in eng.sched.paused)
        for ev in eng.poll_events():
            assert ev.request_id not in finals, "a second final event"
            tokens.setdefault(ev.request_id, []).extend(ev.token_ids)
            if ev.finished:
                finals[ev.request_id] = ev
                assert eng.blocks.held(ev.request_id) == 0  # finished/cancelled holds nothing
    else:
        raise AssertionError("did not drain within 5000 iterations")
    assert set(finals) == submitted  # every request (paused ones included) finished once
    assert ever_paused <= set(finals)
    for rid, ev in finals.items():
        out = tokens.get(rid, [])
        assert out == tokens_range(token_base(seed, rid), 0, len(out), output_vocab(32000))
        if ev.finish_reason == FinishReason.CANCELLED:
            assert len(out) <= expected[rid]
        else:
            assert ev.finish_reason in (FinishReason.LENGTH, FinishReason.EOS)
            assert len(out) == expected[rid]  # exact per-request token counts
    assert eng.blocks.free_blocks == eng.blocks.total_blocks


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 300), st.booleans()), max_size=60))
def test_block_manager_books_balance(ops):
    bm = BlockManager(20, 16)
    tokens = {}
    for rid, n, release in ops:
        if release:
            freed = bm.release(rid)
            assert freed == bm.blocks_for(tokens.pop(rid, 0))
        else:
            before = bm.free_blocks
            ok = bm.grow_to(rid, n)
            if ok:
                tokens[rid] = max(tokens.get(rid, 0), n)
                assert bm.held(rid) == bm.blocks_for(tokens[rid])
            else:
                assert bm.free_blocks == before  # a failed grow allocates nothing
        bm.check()
        assert bm.used_blocks + bm.free_blocks == bm.total_blocks

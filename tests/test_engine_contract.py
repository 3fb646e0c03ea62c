"""The engine contract through both TensorRT-LLM adapters on the stand-in: the KV pool
is unknown until the first iteration and then followed, pauses reach the controller in
the iteration they happen, and the stand-in behaves like TensorRT-LLM under pressure
(pauses without leaks, cancel of a queued request, a failed forward pass, refusals)."""

from __future__ import annotations

import time

import pytest
from dynabatch.controller import make_controller
from dynabatch.controller.adaptive import AdaptiveController
from dynabatch.controller.kv_capacity import CAPACITY_UNKNOWN
from dynabatch.core import ServingCore
from dynabatch.engines import trtllm_executor as tx
from dynabatch.engines import trtllm_llmapi as tl
from dynabatch.engines.simulated.executor import SimulatedExecutor
from dynabatch.gate import AdmissionGate
from dynabatch.metrics import _idle_stats
from dynabatch.types import ControlInput, FinishReason, GenerationRequest, RequestState
from stand_in.activate import stand_in_trtllm  # noqa: F401  (fixture)
from stand_in.harness import RecordingSink, checkpoint_dir, collect, engine_dir
from stats_builder import iteration_stats

SENTINEL = 2**31 - 1
# The stand-in's pool without a token cap: 0.9 x 65536 tokens, in the engine's 64-token
# blocks (Executor) or the LLM API's default 32-token blocks.
STAND_IN_POOL = {
    "trtllm_executor": (int(0.9 * 65536) // 64, 64),
    "trtllm_llmapi": (int(0.9 * 65536) // 32, 32),
}


def executor_engine(tmp_path, **params):
    p = {"gpt_model_path": engine_dir(tmp_path)}
    p.update(params)
    return tx.from_parameters(p, max_batch_size=8)


def llmapi_engine(tmp_path, **params):
    p = {"gpt_model_path": checkpoint_dir(tmp_path), "stats_check_period_ms": "5"}
    p.update(params)
    return tl.from_parameters(p, max_batch_size=8)


ENGINES = {"trtllm_executor": executor_engine, "trtllm_llmapi": llmapi_engine}


class Recorder:
    """Wraps a controller: records (stats, limit, decision, scales) of every update.
    With `admit`, the core admits up to that many regardless of the inner limit (the
    inner controller still sees every sample), so KV pressure does not depend on when
    the LLM API's stats thread hands records over."""

    def __init__(self, inner, admit: int | None = None) -> None:
        self.inner = inner
        self.admit = admit
        self.name = inner.name
        self.wants_waiting_head = getattr(inner, "wants_waiting_head", False)
        self.updates: list[tuple] = []
        self.initial = inner.decision

    def update(self, sample: ControlInput) -> int:
        limit = self.inner.update(sample)
        scales = (getattr(self.inner, "scale", 1.0), getattr(self.inner, "forecast_scale", 1.0))
        self.updates.append((sample.stats, limit, self.inner.decision, scales))
        return limit

    def on_request_finish(self, state: RequestState) -> None:
        self.inner.on_request_finish(state)

    @property
    def limit(self) -> int:
        return self.admit if self.admit is not None else self.inner.limit

    @property
    def decision(self):
        return self.inner.decision


def serve(core: ServingCore, sinks: dict[int, RecordingSink], timeout_s: float = 30.0) -> None:
    """Step the core until every sink has its final event (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    while any(s.final is None for s in sinks.values()) and time.monotonic() < deadline:
        core.step(0.01)
    assert all(s.final is not None for s in sinks.values()), "requests did not finish in time"


def drain_until_idle(core: ServingCore, timeout_s: float = 10.0):
    """Step until the engine reports an iteration with nothing active; return it.

    The LLM API hands stats over only until one `get_stats` timeout passes without a
    record, and then not before the next `generate_async` (TensorRT-LLM's
    IterationResult.mark_undone): a one-token probe request brings the tail in."""
    if isinstance(core.engine, tl.TrtllmLlmApiEngine):
        probe = {10_000: RecordingSink()}
        core.submit(GenerationRequest(10_000, [1], 1), probe[10_000])
        serve(core, probe)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        core.step(0.01)
        s = core.last_stats
        if s is not None and s.num_active_requests == 0:
            return s
    raise AssertionError("the engine never reported an idle iteration")


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_capacity_unknown_until_the_first_iteration_then_followed(
    stand_in_trtllm, tmp_path, engine
):
    eng = ENGINES[engine](tmp_path)
    ctl = Recorder(make_controller("adaptive", {}, max_batch_size=8))
    core = ServingCore(eng, ctl, AdmissionGate(64, 0.0))
    try:
        # Before any iteration nothing is known, and nothing pretends to be.
        assert eng.kv_capacity is None
        assert ctl.initial.reason == CAPACITY_UNKNOWN and ctl.initial.limit == 1
        idle = _idle_stats(core)  # what /metrics shows before the first request
        assert (idle.max_num_blocks, idle.free_num_blocks, idle.tokens_per_block) == (0, 0, 0)
        sinks = {rid: RecordingSink() for rid in range(1, 5)}
        for rid, sink in sinks.items():
            core.submit(GenerationRequest(rid, [3, 4, 5], 12), sink)
        serve(core, sinks)
        assert all(s.final.finish_reason == FinishReason.LENGTH for s in sinks.values())
        drain_until_idle(core)
        first_known = next(i for i, (s, *_) in enumerate(ctl.updates) if s.kv_capacity is not None)
        stats, _, decision, _ = ctl.updates[first_known]
        blocks, tpb = STAND_IN_POOL[engine]
        assert (stats.max_num_blocks, stats.tokens_per_block) == (blocks, tpb)
        # the very update that first carried the pool sized adaptive's memory bound by it
        adaptive = ctl.inner
        assert isinstance(adaptive, AdaptiveController)
        assert adaptive.total_tokens == blocks * tpb
        assert decision.reason != CAPACITY_UNKNOWN
        assert eng.kv_capacity.total_blocks == blocks  # the adapter follows too
        for s, limit, d, _ in ctl.updates:
            assert limit < SENTINEL and all(v < SENTINEL for v in d.bounds.values())
            assert s.max_num_blocks < SENTINEL
    finally:
        eng.shutdown()


def test_capacity_follows_a_changed_pool_within_one_iteration():
    ctl = make_controller("adaptive", {}, max_batch_size=64)
    for total in (100, 921, 400):
        ctl.update(
            ControlInput(iteration_stats(t=total, total=total, tokens_per_block=64), 0, 0, {})
        )
        assert ctl.total_tokens == total * 64


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_pauses_reach_the_controller_and_adaptive_backs_off(stand_in_trtllm, tmp_path, engine):
    # 8 x (60 + 200) tokens in a 512-token pool (8 blocks of 64) under max_utilization.
    eng = ENGINES[engine](
        tmp_path, batch_scheduler_policy="max_utilization", max_tokens_in_paged_kv_cache="512"
    )
    adaptive = make_controller("adaptive", {"tpot_sla_ms": 10_000}, max_batch_size=8)
    # All 8 are admitted at once (as a static limit would); adaptive sees every sample.
    ctl = Recorder(adaptive, admit=8)
    core = ServingCore(eng, ctl, AdmissionGate(64, 0.0))
    try:
        sinks = {rid: RecordingSink() for rid in range(1, 9)}
        for rid, sink in sinks.items():
            core.submit(GenerationRequest(rid, list(range(rid, rid + 60)), 200), sink)
        serve(core, sinks, timeout_s=60.0)
        assert all(s.final.finish_reason == FinishReason.LENGTH for s in sinks.values())
        assert all(len(s.tokens) == 200 for s in sinks.values())
        idle = drain_until_idle(core)  # every iteration's stats are in
        assert idle.used_num_blocks == 0 and idle.free_num_blocks == idle.max_num_blocks
        paused_at = [i for i, (s, *_) in enumerate(ctl.updates) if s.num_new_pauses > 0]
        assert paused_at, "no iteration reported a pause to the controller"
        assert core.counters.paused_total == sum(s.num_new_pauses for s, *_ in ctl.updates)
        i = paused_at[0]
        before = ctl.updates[i - 1][3] if i else (1.0, 1.0)
        # adaptive backs off in the update of the pause itself: both KV budgets shrink
        after = ctl.updates[i][3]
        assert after[0] < before[0] and after[1] < before[1]
    finally:
        eng.shutdown()


def test_simulated_executor_reports_pauses_of_the_iteration():
    eng = SimulatedExecutor(
        "llama-2-7b-a100-80gb",
        max_batch_size=8,
        tokens_per_block=64,
        max_tokens_in_paged_kv_cache=512,
        capacity_policy="max_utilization",
    )
    for rid in range(8):
        eng.submit(GenerationRequest(rid, list(range(60)), 200))
    stats = []
    while eng.has_work:
        s = eng.step()
        if s is not None:
            stats.append(s)
    assert sum(s.num_new_pauses for s in stats) > 0
    # TensorRT-LLM's meaning: numPausedRequests counts the pauses of that iteration
    assert all(s.num_paused_requests == s.num_new_pauses for s in stats)
    assert stats[-1].used_num_blocks == 0


def test_stand_in_pauses_without_leaking_blocks(stand_in_trtllm, tmp_path):
    eng = executor_engine(
        tmp_path, batch_scheduler_policy="max_utilization", max_tokens_in_paged_kv_cache="512"
    )
    try:
        for rid in range(1, 9):
            eng.submit(GenerationRequest(rid, list(range(60)), 200))
        events = collect(eng, set(range(1, 9)), timeout_s=60.0)
        assert all(ev[-1].finish_reason == FinishReason.LENGTH for ev in events.values())
        sim = eng._ex.stand_in_engine.exe
        assert not sim.has_work
        assert sim.drain_stats() == []  # the stand-in consumed them
        stats = eng.drain_stats()
        assert sum(s.num_new_pauses for s in stats) > 0
        assert stats[-1].used_num_blocks == 0 and stats[-1].num_active_requests == 0
    finally:
        eng.shutdown()


def test_cancel_of_a_queued_request_takes_effect_when_fetched(stand_in_trtllm, tmp_path):
    p = {"gpt_model_path": engine_dir(tmp_path, max_batch_size=1)}
    eng = tx.from_parameters(p, max_batch_size=1)
    try:
        eng.submit(GenerationRequest(1, [1, 2], 50, streaming=True))
        eng.submit(GenerationRequest(2, [1, 2], 50, streaming=True))  # queued behind 1
        eng.cancel(2)
        events = collect(eng, {1, 2})
        assert events[2][-1].finish_reason == FinishReason.CANCELLED
        assert sum(len(e.token_ids) for e in events[2]) == 0  # never ran
        assert events[1][-1].finish_reason == FinishReason.LENGTH
    finally:
        eng.shutdown()


def test_forward_pass_failure_fails_only_active_requests(stand_in_trtllm, tmp_path):
    p = {"gpt_model_path": engine_dir(tmp_path, max_batch_size=2)}
    eng = tx.from_parameters(p, max_batch_size=2)
    try:
        for rid in (1, 2, 3):
            eng.submit(GenerationRequest(rid, [rid, 7], 400, streaming=True))
        got: set[int] = set()
        deadline = time.monotonic() + 10
        while got != {1, 2} and time.monotonic() < deadline:
            got |= {e.request_id for e in eng.poll_events(0.05) if e.token_ids}
        assert got == {1, 2}  # 1 and 2 run, 3 waits in the executor's queue
        eng._ex.stand_in_engine.fail_next_iteration("CUDA error: an illegal memory access")
        events = collect(eng, {1, 2, 3}, timeout_s=30.0)
        for rid in (1, 2):
            assert events[rid][-1].finish_reason == FinishReason.ERROR
            assert "illegal memory access" in events[rid][-1].error
        assert events[3][-1].finish_reason == FinishReason.LENGTH
        assert sum(len(e.token_ids) for e in events[3]) == 400
    finally:
        eng.shutdown()


def test_llm_api_refuses_a_prompt_over_max_num_tokens_synchronously(stand_in_trtllm, tmp_path):
    llm = stand_in_trtllm.LLM(checkpoint_dir(tmp_path), max_num_tokens=64)
    try:
        with pytest.raises(ValueError, match="max_num_tokens"):
            llm.generate_async(list(range(65)), stand_in_trtllm.SamplingParams(max_tokens=2))
    finally:
        llm.shutdown()
    (tmp_path / "x").mkdir()
    eng = llmapi_engine(tmp_path / "x", max_num_tokens="64")
    try:
        eng.submit(GenerationRequest(1, list(range(65)), 2))
        final = collect(eng, {1})[1][-1]
        assert final.finish_reason == FinishReason.ERROR and "max_num_tokens" in final.error
    finally:
        eng.shutdown()


def test_adaptive_latency_bound_works_without_ctx_tokens():
    # The PyTorch backend reports num_ctx_tokens 0: the fit must still find t = 10 + 2 n.
    ctl = make_controller("adaptive", {"tpot_sla_ms": 100, "ttft_sla_s": 0}, max_batch_size=256)
    assert isinstance(ctl, AdaptiveController)
    for i in range(400):
        n = 4 + (i % 40)
        s = iteration_stats(t=i * 0.05, total=100_000, gen=n, latency=10.0 + 2.0 * n)
        assert s.num_ctx_tokens == 0
        ctl.update(ControlInput(s, 0, 0.0, {}))
    a, b, c = ctl.sla.fit.solve()
    assert a == pytest.approx(10.0, abs=0.01) and b == pytest.approx(2.0, abs=0.001)
    assert ctl.b_sla == pytest.approx((0.95 * 100 - 10.0) / 2.0, rel=0.05)


@pytest.mark.parametrize("build", [executor_engine, llmapi_engine])
def test_the_adapters_tell_the_core_a_configured_max_num_tokens(stand_in_trtllm, tmp_path, build):
    # the serving core passes no more prompt tokens per iteration than this; without
    # the parameter the build's own value applies, which the executor does not tell
    (tmp_path / "set").mkdir()
    (tmp_path / "unset").mkdir()
    configured, unset = build(tmp_path / "set", max_num_tokens="2048"), build(tmp_path / "unset")
    try:
        assert configured.max_num_tokens == 2048 and unset.max_num_tokens is None
    finally:
        configured.shutdown()
        unset.shutdown()

"""The TensorRT-LLM Executor adapter against the stand-in `tensorrt_llm` (tests/stand_in).

No GPU here: these check the adapter's parameter mapping, flows, cancellation, error
paths and stats normalisation against a stand-in that mirrors TensorRT-LLM 1.2.x's
binding names and misuse errors.
"""

from __future__ import annotations

import datetime
import sys
import time

import pytest
from dynabatch.core import ServingCore
from dynabatch.engines import trtllm_executor as tx
from dynabatch.engines.base import EngineError
from dynabatch.gate import AdmissionGate
from dynabatch.params import ConfigError
from dynabatch.types import FinishReason, GenerationRequest, SamplingParams
from stand_in.activate import stand_in_trtllm  # noqa: F401  (fixture)
from stand_in.harness import (
    FixedController,
    RecordingSink,
    collect,
    engine_dir,
    stats_until,
    token_at,
    wait_for_tokens,
)

ALL_SET = {
    "gpt_model_path": None,  # filled per test
    "batch_scheduler_policy": "max_utilization",
    "kv_cache_free_gpu_mem_fraction": "0.5",
    "max_tokens_in_paged_kv_cache": "8192",
    "enable_kv_cache_reuse": "true",
    "enable_chunked_context": "true",
    "max_beam_width": "2",
    "max_num_tokens": "2048",
    "iter_stats_max_iterations": "77",
    "trtllm_stream_tokens": "false",
    "gpu_device_ids": "0,1",
    "tensor_parallel_size": "2",
    "pipeline_parallel_size": "1",
    "executor_worker_path": "/opt/trtllm/executorWorker",
}


def make(tmp_path, **params):
    p = {"gpt_model_path": engine_dir(tmp_path)}
    p.update(params)
    return tx.from_parameters(p, max_batch_size=8)


def req(rid, prompt=(5, 6, 7), n=6, **kw):
    return GenerationRequest(rid, list(prompt), n, **kw)


def test_every_parameter_reaches_its_config_field(stand_in_trtllm, tmp_path):
    assert {s.name for s in tx.TRTLLM_EXECUTOR_PARAMS} == set(ALL_SET), (
        "a declared parameter is not covered by this mapping test"
    )
    tle = stand_in_trtllm.bindings.executor
    params = dict(ALL_SET, gpt_model_path=engine_dir(tmp_path))
    eng = tx.from_parameters(params, max_batch_size=48)
    try:
        cfg = eng._ex.config
        assert cfg.max_batch_size == 48  # the controller's upper bound
        assert (
            cfg.scheduler_config.capacity_scheduler_policy
            is tle.CapacitySchedulerPolicy.MAX_UTILIZATION
        )
        assert cfg.kv_cache_config.free_gpu_memory_fraction == 0.5
        assert cfg.kv_cache_config.max_tokens == 8192
        assert cfg.kv_cache_config.enable_block_reuse is True
        assert cfg.enable_chunked_context is True
        assert cfg.max_beam_width == 2
        assert cfg.max_num_tokens == 2048
        assert cfg.iter_stats_max_iterations == 77
        assert cfg.parallel_config.device_ids == [0, 1]
        # two GPUs: orchestrator mode with the given worker (tests/test_trtllm_parallel.py)
        assert cfg.parallel_config.communication_mode is tle.CommunicationMode.ORCHESTRATOR
        assert cfg.parallel_config.orchestrator_config.worker_executable_path == (
            "/opt/trtllm/executorWorker"
        )
        assert eng._stream_tokens is False
        assert eng.kv_capacity.total_tokens == 8192  # known before the first stats
    finally:
        eng.shutdown()


def test_defaults_follow_tensorrt_llm(stand_in_trtllm, tmp_path):
    tle = stand_in_trtllm.bindings.executor
    eng = make(tmp_path)
    try:
        cfg = eng._ex.config
        assert (
            cfg.scheduler_config.capacity_scheduler_policy
            is tle.CapacitySchedulerPolicy.GUARANTEED_NO_EVICT
        )
        assert cfg.kv_cache_config.max_tokens is None
        assert cfg.kv_cache_config.free_gpu_memory_fraction == 0.9
        assert cfg.kv_cache_config.enable_block_reuse is False
        assert cfg.max_num_tokens is None and cfg.parallel_config is None
    finally:
        eng.shutdown()


@pytest.mark.parametrize(
    "bad, name",
    [
        ({"batch_scheduler_policy": "fastest"}, "batch_scheduler_policy"),
        ({"kv_cache_free_gpu_mem_fraction": "1.5"}, "kv_cache_free_gpu_mem_fraction"),
        ({"gpu_device_ids": "0,x"}, "gpu_device_ids"),
        ({"gpt_model_path": ""}, "gpt_model_path"),
    ],
)
def test_bad_parameters_fail_model_load(stand_in_trtllm, tmp_path, bad, name):
    with pytest.raises(ConfigError) as err:
        make(tmp_path, **bad)
    assert err.value.name == name


def test_missing_engine_directory_is_an_engine_error(stand_in_trtllm, tmp_path):
    with pytest.raises(EngineError, match="could not load"):
        tx.from_parameters({"gpt_model_path": str(tmp_path / "nope")}, max_batch_size=4)


def test_missing_tensorrt_llm_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)  # import -> ImportError
    with pytest.raises(ConfigError) as err:
        tx.from_parameters({"gpt_model_path": str(tmp_path)}, max_batch_size=4)
    msg = str(err.value)
    assert "tritonserver:" in msg and "trtllm-python-py3" in msg and "pip install" in msg
    assert "engine=simulated" in msg


def test_virtual_clock_is_refused(stand_in_trtllm, tmp_path):
    with pytest.raises(ConfigError, match="real time"):
        tx.from_parameters(
            {"gpt_model_path": engine_dir(tmp_path)}, max_batch_size=4, realtime=False
        )


def test_streaming_request_gets_tokens_per_iteration(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)
    try:
        eng.submit(req(1, n=6, streaming=True))
        events = collect(eng, {1})[1]
        assert len(events) >= 2 and all(not e.finished for e in events[:-1])
        final = events[-1]
        assert final.finished and final.finish_reason == FinishReason.LENGTH
        assert [t for e in events for t in e.token_ids] == [
            token_at([5, 6, 7], i) for i in range(6)
        ]
    finally:
        eng.shutdown()


def test_non_streaming_request_gets_one_final_answer(stand_in_trtllm, tmp_path):
    eng = make(tmp_path, trtllm_stream_tokens="false")
    try:
        eng.submit(req(1, n=5, streaming=False))
        events = collect(eng, {1})[1]
        assert len(events) == 1 and events[0].finished
        # exclude_input_from_output=True: the prompt is not echoed back
        assert events[0].token_ids == [token_at([5, 6, 7], i) for i in range(5)]
    finally:
        eng.shutdown()


def test_end_id_finishes_the_request(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)
    try:
        end = token_at([5, 6, 7], 2)
        eng.submit(req(1, n=50, end_id=end, pad_id=end))
        events = collect(eng, {1})[1]
        assert events[-1].finish_reason == FinishReason.END_ID
        assert [t for e in events for t in e.token_ids][-1] == end
    finally:
        eng.shutdown()


def test_sampling_options_reach_the_request(stand_in_trtllm, tmp_path, monkeypatch):
    eng = make(tmp_path, max_beam_width="2")
    seen = []
    real = eng._ex.enqueue_request
    monkeypatch.setattr(eng._ex, "enqueue_request", lambda r: (seen.append(r), real(r))[1])
    try:
        sp = SamplingParams(
            temperature=0.7,
            top_k=40,
            top_p=0.9,
            seed=3,
            repetition_penalty=1.1,
            min_tokens=2,
            beam_width=2,
        )
        eng.submit(req(9, n=3, sampling=sp, end_id=2, pad_id=0))
        r = seen[0]
        sc = r.sampling_config
        assert (sc.beam_width, sc.temperature, sc.top_k, sc.top_p, sc.seed) == (2, 0.7, 40, 0.9, 3)
        assert (sc.repetition_penalty, sc.min_tokens) == (1.1, 2)
        assert (r.end_id, r.pad_id, r.client_id) == (2, 0, 9)
        assert r.streaming is False  # beam search: one final answer
        assert r.output_config.exclude_input_from_output is True
        collect(eng, {9})
        with pytest.raises(EngineError, match="max_beam_width"):
            eng.submit(req(10, sampling=SamplingParams(beam_width=3)))
    finally:
        eng.shutdown()


def test_cancel_ends_with_cancelled_and_frees_kv(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)
    try:
        eng.submit(req(1, n=1000, streaming=True))
        wait_for_tokens(eng, 1, 2)
        eng.cancel(1)
        events = collect(eng, {1})[1]
        assert events[-1].finished and events[-1].finish_reason == FinishReason.CANCELLED
        stats = stats_until(eng, lambda got: got and got[-1].num_active_requests == 0)
        assert stats[-1].used_num_blocks == 0
        eng.cancel(12345)  # unknown id: nothing happens
    finally:
        eng.shutdown()


def test_error_response_goes_to_the_right_request(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)  # max_input_len 1024 in the stand-in engine config
    try:
        eng.submit(req(1, prompt=[1] * 2000, n=4))
        eng.submit(req(2, n=4))
        events = collect(eng, {1, 2})
        bad = events[1][-1]
        assert bad.finish_reason == FinishReason.ERROR and "max_input_len" in bad.error
        assert events[2][-1].finish_reason == FinishReason.LENGTH and events[2][-1].error is None
    finally:
        eng.shutdown()


def test_iteration_failure_fails_every_active_request(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)
    try:
        for rid in (1, 2):
            eng.submit(req(rid, n=1000, streaming=True))
        wait_for_tokens(eng, 2, 1)
        eng._ex.stand_in_engine.fail_next_iteration("CUDA error: an illegal memory access")
        events = collect(eng, {1, 2})
        for rid in (1, 2):
            assert events[rid][-1].finish_reason == FinishReason.ERROR
            assert "illegal memory access" in events[rid][-1].error
    finally:
        eng.shutdown()


def test_submit_after_shutdown_is_an_engine_error(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)
    eng.shutdown()
    with pytest.raises(EngineError):
        eng.submit(req(1))
    assert eng.poll_events(0) == [] and eng.drain_stats() == []


def test_stand_in_raises_like_the_bindings(stand_in_trtllm, tmp_path):
    tle = stand_in_trtllm.bindings.executor
    with pytest.raises(TypeError):
        tle.Request([1.5, 2], 3)
    with pytest.raises(TypeError):
        tle.Request([1, 2], 3, streamin=True)
    with pytest.raises(TypeError):
        tle.ExecutorConfig(max_batch_sz=3)
    with pytest.raises(TypeError):
        tle.SchedulerConfig("max_utilization")
    ex = tle.Executor(engine_dir(tmp_path), tle.ModelType.DECODER_ONLY, tle.ExecutorConfig())
    with pytest.raises(TypeError):
        ex.await_responses(timeout=5)  # an int selects the request-id overload
    assert ex.await_responses(timeout=datetime.timedelta(milliseconds=1)) == []
    ex.shutdown()
    with pytest.raises(RuntimeError, match="Shutdown"):
        ex.enqueue_request(tle.Request([1, 2], 3))


def test_stats_are_normalised_and_update_kv_capacity(stand_in_trtllm, tmp_path):
    eng = make(tmp_path, max_tokens_in_paged_kv_cache="6400")
    try:
        assert eng.kv_capacity.total_tokens == 6400
        eng.submit(req(1, prompt=list(range(100)), n=10))
        collect(eng, {1})
        # until the iteration that completed the request is in
        stats = stats_until(eng, lambda got: any(x.num_completed_requests for x in got))
        s = stats[0]
        assert (s.max_num_blocks, s.tokens_per_block) == (100, 64)
        assert s.free_num_blocks + s.used_num_blocks == s.max_num_blocks
        assert s.max_num_active_requests == 8 and s.iter_latency_ms > 0
        assert any(x.num_context_requests == 1 and x.num_ctx_tokens == 100 for x in stats)
        stamps = [x.timestamp for x in stats]
        assert stamps == sorted(stamps) and stamps[-1] <= eng.now()
        assert [x.iter for x in stats] == sorted(x.iter for x in stats)
        assert (eng.kv_capacity.total_blocks, eng.kv_capacity.tokens_per_block) == (100, 64)
    finally:
        eng.shutdown()


def test_serving_core_drives_the_executor_under_a_limit(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)
    ctl = FixedController(limit=2)
    core = ServingCore(eng, ctl, AdmissionGate())
    sinks = {rid: RecordingSink() for rid in range(1, 6)}
    try:
        for rid, sink in sinks.items():
            core.submit(req(rid, prompt=[rid, 1], n=4 + rid, streaming=True), sink)
        deadline = time.monotonic() + 15
        while any(s.final is None for s in sinks.values()) and time.monotonic() < deadline:
            core.step(0.02)
        for rid, sink in sinks.items():
            assert sink.final is not None and sink.final.finish_reason == FinishReason.LENGTH
            assert sink.tokens == [token_at([rid, 1], i) for i in range(4 + rid)]
        assert ctl.samples, "the controller saw no iteration stats"
        assert max(s.stats.num_active_requests for s in ctl.samples) <= 2
        assert any(s.num_waiting > 0 for s in ctl.samples)  # the gate held requests back
        assert len(ctl.finished) == 5 and core.counters.completed == 5
    finally:
        eng.shutdown()


def test_model_config_and_factory_build_the_executor(stand_in_trtllm, tmp_path):
    from dynabatch.config import load_config
    from dynabatch.engines.factory import make_engine

    cfg = load_config(
        {
            "engine": "trtllm_executor",
            "gpt_model_path": engine_dir(tmp_path),
            "batch_scheduler_policy": "max_utilization",
            "max_batch_size": "24",
        }
    )
    eng = make_engine(
        cfg.engine, cfg.engine_params, max_batch_size=cfg.max_batch_size, realtime=True
    )
    try:
        assert eng._ex.config.max_batch_size == 24
        assert eng._ex.config.scheduler_config.capacity_scheduler_policy.name == "MAX_UTILIZATION"
    finally:
        eng.shutdown()


def test_stand_in_bindings_details(stand_in_trtllm, tmp_path):
    tle = stand_in_trtllm.bindings.executor
    r = tle.Request([1, 2], 3)
    assert r.request_type is tle.RequestType.REQUEST_TYPE_CONTEXT_AND_GENERATION
    r = tle.Request([1, 2], 3, type=tle.RequestType.REQUEST_TYPE_CONTEXT_ONLY)
    assert r.request_type is tle.RequestType.REQUEST_TYPE_CONTEXT_ONLY
    with pytest.raises(TypeError):
        tle.Request([1, 2], 3, type="context")
    resp = tle.Response(7, "boom", 3)
    with pytest.raises(AttributeError):
        resp.request_id = 8  # read-only in the bindings
    ex = tle.Executor(engine_dir(tmp_path), tle.ModelType.DECODER_ONLY, tle.ExecutorConfig())
    try:
        assert ex.get_latest_request_stats() == [] and ex.is_participant()
    finally:
        ex.shutdown()

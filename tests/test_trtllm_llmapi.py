"""The TensorRT-LLM LLM-API adapter against the stand-in `tensorrt_llm` (tests/stand_in):
parameter mapping, the asyncio bridge (streaming, non-streaming, cancel, errors) and
stats normalisation through ServingCore. No GPU involved."""

from __future__ import annotations

import sys
import time

import pytest
from dynabatch.core import ServingCore
from dynabatch.engines import trtllm_llmapi as tl
from dynabatch.engines.base import EngineError
from dynabatch.gate import AdmissionGate
from dynabatch.params import ConfigError
from dynabatch.types import FinishReason, GenerationRequest, SamplingParams
from stand_in.activate import stand_in_trtllm  # noqa: F401  (fixture)
from stand_in.harness import (
    FixedController,
    RecordingSink,
    checkpoint_dir,
    collect,
    token_at,
    wait_for_tokens,
)

ALL_SET = {
    "gpt_model_path": None,
    "batch_scheduler_policy": "max_utilization",
    "kv_cache_free_gpu_mem_fraction": "0.4",
    "max_tokens_in_paged_kv_cache": "4096",
    "enable_kv_cache_reuse": "true",
    "enable_chunked_context": "true",
    "max_beam_width": "2",
    "max_num_tokens": "1024",
    "iter_stats_max_iterations": "55",
    "trtllm_stream_tokens": "false",
    "tokenizer_dir": None,
    "skip_tokenizer_init": "false",
    "tensor_parallel_size": "1",
    "pipeline_parallel_size": "1",
    "gpu_device_ids": "",  # tests/test_trtllm_parallel.py covers it
    "stats_check_period_ms": "5",
}


def make(tmp_path, tokenizer=True, **params):
    p = {
        "gpt_model_path": checkpoint_dir(tmp_path, tokenizer=tokenizer),
        "stats_check_period_ms": "5",
    }
    p.update(params)
    return tl.from_parameters(p, max_batch_size=8)


def req(rid, prompt=(4, 5), n=6, **kw):
    return GenerationRequest(rid, list(prompt), n, **kw)


def test_every_parameter_reaches_the_llm(stand_in_trtllm, tmp_path):
    assert {s.name for s in tl.TRTLLM_LLMAPI_PARAMS} == set(ALL_SET), (
        "a declared parameter is not covered by this mapping test"
    )
    ckpt = checkpoint_dir(tmp_path)
    eng = tl.from_parameters(
        dict(ALL_SET, gpt_model_path=ckpt, tokenizer_dir=ckpt), max_batch_size=40
    )
    try:
        a = eng._llm.args
        assert a["model"] == ckpt and a["tokenizer"] == ckpt
        assert a["max_batch_size"] == 40  # the controller's upper bound
        assert a["scheduler_config"].capacity_scheduler_policy.value == "MAX_UTILIZATION"
        kv = a["kv_cache_config"]
        assert (kv.free_gpu_memory_fraction, kv.max_tokens, kv.enable_block_reuse) == (
            0.4,
            4096,
            True,
        )
        assert a["enable_chunked_prefill"] is True and a["enable_iter_perf_stats"] is True
        assert (a["max_beam_width"], a["max_num_tokens"], a["iter_stats_max_iterations"]) == (
            2,
            1024,
            55,
        )
        assert a["tensor_parallel_size"] == 1 and a["skip_tokenizer_init"] is False
        assert a["pipeline_parallel_size"] == 1
        assert eng._stream_tokens is False and eng._stats_period == 0.005
    finally:
        eng.shutdown()


def test_missing_tensorrt_llm_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)
    with pytest.raises(ConfigError) as err:
        tl.from_parameters({"gpt_model_path": str(tmp_path)}, max_batch_size=4)
    assert "trtllm-python-py3" in str(err.value) and "pip install" in str(err.value)


def test_unloadable_model_is_an_engine_error(stand_in_trtllm, tmp_path):
    with pytest.raises(EngineError, match="tokenizer"):
        make(tmp_path, tokenizer=False)  # no tokenizer files and skip_tokenizer_init=false


def test_streaming_and_non_streaming(stand_in_trtllm, tmp_path):
    eng = make(tmp_path, trtllm_stream_tokens="false")
    try:
        eng.submit(req(1, n=6, streaming=True))
        eng.submit(req(2, n=5, streaming=False))
        ev = collect(eng, {1, 2})
        assert len(ev[1]) >= 2 and ev[1][-1].finish_reason == FinishReason.LENGTH
        assert [t for e in ev[1] for t in e.token_ids] == [token_at([4, 5], i) for i in range(6)]
        assert len(ev[2]) == 1 and ev[2][0].finished
        assert ev[2][0].token_ids == [token_at([4, 5], i) for i in range(5)]
    finally:
        eng.shutdown()


def test_end_id_and_sampling_mapping(stand_in_trtllm, tmp_path, monkeypatch):
    eng = make(tmp_path)
    seen = []
    real = eng._llm.generate_async
    monkeypatch.setattr(
        eng._llm, "generate_async", lambda *a, **k: (seen.append((a, k)), real(*a, **k))[1]
    )
    try:
        end = token_at([4, 5], 1)
        sp = SamplingParams(temperature=0.5, top_k=8, top_p=0.8, seed=1, min_tokens=1)
        eng.submit(req(3, n=40, end_id=end, sampling=sp))
        ev = collect(eng, {3})[3]
        assert ev[-1].finish_reason == FinishReason.END_ID
        args, kw = seen[0]
        p = kw["sampling_params"]
        assert args[0] == [4, 5] and kw["streaming"] is True
        assert (p.end_id, p.max_tokens, p.temperature, p.top_k, p.top_p, p.seed) == (
            end,
            40,
            0.5,
            8,
            0.8,
            1,
        )
        assert p.detokenize is False and p.use_beam_search is False
    finally:
        eng.shutdown()


def test_no_tokenizer_and_no_end_id_runs_to_length(stand_in_trtllm, tmp_path):
    eng = make(tmp_path, tokenizer=False, skip_tokenizer_init="true")
    try:
        eng.submit(req(1, n=4))
        ev = collect(eng, {1})[1]
        assert ev[-1].finish_reason == FinishReason.LENGTH
        assert sum(len(e.token_ids) for e in ev) == 4
    finally:
        eng.shutdown()


def test_request_refused_by_generate_async_gets_an_error(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)  # max_beam_width 1
    try:
        eng.submit(req(1, sampling=SamplingParams(beam_width=3)))
        final = collect(eng, {1})[1][-1]
        assert final.finish_reason == FinishReason.ERROR and "max_beam_width" in final.error
    finally:
        eng.shutdown()


def test_cancel_aborts_the_request(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)
    try:
        eng.submit(req(1, n=1000, streaming=True))
        wait_for_tokens(eng, 1, 2)
        eng.cancel(1)
        ev = collect(eng, {1})[1]
        assert ev[-1].finished and ev[-1].finish_reason == FinishReason.CANCELLED
        # a cancel right after submit (before generate_async ran) is not lost
        eng.submit(req(2, n=1000))
        eng.cancel(2)
        assert collect(eng, {2})[2][-1].finish_reason == FinishReason.CANCELLED
    finally:
        eng.shutdown()


def test_request_error_reaches_only_that_request(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)  # max_position_embeddings 2048 in the stand-in checkpoint
    try:
        eng.submit(req(1, prompt=[1] * 2040, n=100))
        eng.submit(req(2, n=3))
        ev = collect(eng, {1, 2})
        assert ev[1][-1].finish_reason == FinishReason.ERROR and "max_seq_len" in ev[1][-1].error
        assert ev[2][-1].finish_reason == FinishReason.LENGTH
    finally:
        eng.shutdown()


def test_stats_are_normalised_from_camel_case(stand_in_trtllm, tmp_path):
    eng = make(tmp_path, max_tokens_in_paged_kv_cache="3200")
    try:
        eng.submit(req(1, prompt=list(range(50)), n=8))
        collect(eng, {1})
        stats, deadline = [], time.monotonic() + 5
        while not stats and time.monotonic() < deadline:
            stats = eng.drain_stats()
            time.sleep(0.01)
        assert stats, "no stats from get_stats"
        s = stats[0]
        assert (s.max_num_blocks, s.tokens_per_block) == (100, 32)  # KvCacheConfig default 32
        assert s.used_num_blocks + s.free_num_blocks == 100 and s.iter_latency_ms > 0
        # the PyTorch backend leaves numCtxTokens at 0 (as the stand-in's LLM does)
        assert all(x.num_ctx_tokens == 0 for x in stats)
        assert [x.timestamp for x in stats] == sorted(x.timestamp for x in stats)
        assert (eng.kv_capacity.total_blocks, eng.kv_capacity.tokens_per_block) == (100, 32)
    finally:
        eng.shutdown()


def test_shutdown_then_submit_fails(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)
    eng.submit(req(1, n=100000))
    eng.shutdown()
    with pytest.raises(EngineError):
        eng.submit(req(2))
    assert not eng._loop_thread.is_alive() and not eng._stats_thread.is_alive()


def test_serving_core_drives_the_llm_under_a_limit(stand_in_trtllm, tmp_path):
    eng = make(tmp_path)
    ctl = FixedController(limit=2)
    core = ServingCore(eng, ctl, AdmissionGate())
    sinks = {rid: RecordingSink() for rid in range(1, 6)}
    try:
        for rid, sink in sinks.items():
            core.submit(req(rid, prompt=[rid, 3], n=5, streaming=True), sink)
        deadline = time.monotonic() + 15
        while any(s.final is None for s in sinks.values()) and time.monotonic() < deadline:
            core.step(0.02)
        for rid, sink in sinks.items():
            assert sink.final is not None and sink.final.finish_reason == FinishReason.LENGTH
            assert sink.tokens == [token_at([rid, 3], i) for i in range(5)]
        deadline = time.monotonic() + 2
        while not ctl.samples and time.monotonic() < deadline:
            core.step(0.02)
        assert ctl.samples and max(s.stats.num_active_requests for s in ctl.samples) <= 2
        assert core.counters.completed == 5
    finally:
        eng.shutdown()


def test_stand_in_waiting_queue_policy_is_an_enum(stand_in_trtllm):
    llmapi = stand_in_trtllm.llmapi
    assert llmapi.SchedulerConfig().waiting_queue_policy is llmapi.WaitingQueuePolicy.FCFS
    assert llmapi.SchedulerConfig(waiting_queue_policy="fcfs").waiting_queue_policy == "fcfs"
    with pytest.raises(llmapi.ValidationError):
        llmapi.SchedulerConfig(waiting_queue_policy="lifo")

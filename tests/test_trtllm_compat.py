"""TensorRT-LLM's token interface against a real tritonserver: unary gRPC/HTTP infer on
the non-decoupled configuration, batches of rows (gRPC, perf_analyzer -b 8 with the
input JSON tensorrtllm_backend's tools/gpt/gen_input_data.py writes),
exclude_input_in_output both ways, the requests TensorRT-LLM's stock client scripts
send (their default ids and flags), and inputs we cannot honour refused by name."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from dynabatch.live.sweep import perf_analyzer_env, perf_analyzer_path
from triton_server import wait_for
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

pytestmark = pytest.mark.server

UNARY = "tensorrt_llm_unary"  # model_repositories/unary/tensorrt_llm, loaded under this name
FAST = dict(sim_profile="llama-3-8b-h100", sim_time_scale="0.05")


@pytest.fixture(scope="module")
def server(triton):
    triton.load("tensorrt_llm", **FAST)
    triton.load(UNARY, **FAST)
    return triton


def _inputs(module, tensors: dict) -> list:
    out = []
    for name, value in tensors.items():
        a = np.asarray(value)
        t = module.InferInput(name, list(a.shape), np_to_triton_dtype(a.dtype))
        t.set_data_from_numpy(a)
        out.append(t)
    return out


def _request(prompt: list[int], out_len: int, **extra) -> dict:
    """One row as TensorRT-LLM's clients send it: [1, n] ids, [1, 1] scalars."""
    tensors = {
        "input_ids": np.array([prompt], np.int32),
        "input_lengths": np.array([[len(prompt)]], np.int32),
        "request_output_len": np.array([[out_len]], np.int32),
    }
    tensors.update(extra)
    return tensors


def _grpc_infer(server, tensors: dict, model: str = UNARY):
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        return c.infer(model, _inputs(grpcclient, tensors), request_id="r1")


def test_unary_grpc_infer_returns_prompt_and_tokens_by_default(server):
    prompt = [11, 12, 13]
    result = _grpc_infer(server, _request(prompt, 5))
    ids, seq = result.as_numpy("output_ids"), result.as_numpy("sequence_length")
    # exclude_input_in_output defaults to false, as in TensorRT-LLM: prompt + 5 tokens
    assert ids.shape == (1, 1, 8) and seq.tolist() == [[8]]
    assert ids[0, 0, :3].tolist() == prompt


def test_unary_http_infer_and_generate(server):
    c = httpclient.InferenceServerClient(server.http_url)
    try:
        result = c.infer(UNARY, _inputs(httpclient, _request([1, 2, 3, 4], 6)))
    finally:
        c.close()
    assert result.as_numpy("output_ids").shape == (1, 1, 10)
    body = json.dumps({"input_ids": [1, 2, 3], "request_output_len": 4}).encode()
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{UNARY}/generate", data=body, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    assert out["output_ids"][:3] == [1, 2, 3] and len(out["output_ids"]) == 7
    assert out["sequence_length"] == 7 or out["sequence_length"] == [7]


def test_exclude_input_in_output_both_ways(server):
    prompt = [5, 6, 7, 8]
    on = _request(prompt, 3, exclude_input_in_output=np.array([[True]]))
    assert _grpc_infer(server, on).as_numpy("output_ids").shape == (1, 1, 3)
    off = _request(prompt, 3, exclude_input_in_output=np.array([[False]]))
    ids = _grpc_infer(server, off).as_numpy("output_ids")
    assert ids.shape == (1, 1, 7) and ids[0, 0, :4].tolist() == prompt
    # the model parameter flips the default; the request input still wins
    server.load(UNARY, exclude_input_in_output="true", **FAST)
    try:
        assert _grpc_infer(server, _request(prompt, 3)).as_numpy("output_ids").shape == (1, 1, 3)
        assert _grpc_infer(server, off).as_numpy("output_ids").shape == (1, 1, 7)
    finally:
        server.load(UNARY, **FAST)


def _ragged_batch(rows: int):
    """A padded [rows, longest] batch with per-row lengths, as perf_analyzer -b sends."""
    lengths = [3 + i for i in range(rows)]
    out_lens = [2 + 2 * i for i in range(rows)]
    ids = np.zeros((rows, max(lengths)), np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = np.arange(100 * i + 1, 100 * i + 1 + n)
    tensors = {
        "input_ids": ids,
        "input_lengths": np.array([[n] for n in lengths], np.int32),
        "request_output_len": np.array([[n] for n in out_lens], np.int32),
        "pad_id": np.full((rows, 1), 7, np.int32),
    }
    return tensors, lengths, out_lens


def _kv_returns_to_zero(server, model: str) -> None:
    """Every row's KV blocks are freed once the batch is answered."""
    wait_for(
        lambda: (
            server.metric("nv_trt_llm_kv_cache_block_metrics", model, kv_cache_block_type="used")
            == 0
        ),
        timeout=10,
    )


def test_unary_batch_of_8_is_one_response_with_a_row_each(server):
    tensors, lengths, out_lens = _ragged_batch(8)
    result = _grpc_infer(server, tensors)
    ids, seq = result.as_numpy("output_ids"), result.as_numpy("sequence_length")
    want = [n + o for n, o in zip(lengths, out_lens)]
    assert ids.shape == (8, 1, max(want))
    assert seq.reshape(-1).tolist() == want
    assert result.as_numpy("batch_index").reshape(-1).tolist() == list(range(8))
    for i, n in enumerate(lengths):
        assert ids[i, 0, :n].tolist() == tensors["input_ids"][i, :n].tolist()
        assert (ids[i, 0, want[i] :] == 7).all()  # padded with the row's pad_id
    _kv_returns_to_zero(server, UNARY)


def test_streaming_batch_of_8_rows_carry_batch_index_one_final(server):
    tensors, lengths, out_lens = _ragged_batch(8)
    tensors["streaming"] = np.ones((8, 1), bool)
    responses: queue.Queue = queue.Queue()
    c = grpcclient.InferenceServerClient(server.grpc_url)
    c.start_stream(callback=lambda result, error: responses.put((result, error)))
    tokens: dict[int, list[int]] = {i: [] for i in range(8)}
    finals = []
    try:
        c.async_stream_infer(
            "tensorrt_llm",
            _inputs(grpcclient, tensors),
            request_id="b8",
            enable_empty_final_response=True,
        )
        while not finals:
            result, error = responses.get(timeout=60)
            assert error is None, error
            if result.as_numpy("output_ids") is not None:
                row = int(result.as_numpy("batch_index").reshape(-1)[0])
                tokens[row] += result.as_numpy("output_ids").reshape(-1).tolist()
            final = result.get_response().parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                finals.append(result.get_response().id)
    finally:
        c.stop_stream()
        c.close()
    assert responses.empty() and finals == ["b8"]  # nothing after the one final response
    assert [len(tokens[i]) for i in range(8)] == out_lens  # streaming: new tokens only
    _kv_returns_to_zero(server, "tensorrt_llm")


@pytest.mark.parametrize("streaming", [False, True], ids=["unary", "decoupled-streaming"])
def test_perf_analyzer_b8_with_gen_input_data_json(server, tmp_path, streaming):
    # the sample tensorrtllm_backend's tools/gpt/gen_input_data.py writes (its defaults)
    rng = np.random.default_rng(0)
    sample = {
        "input_ids": rng.integers(0, 50255, 8).astype(np.int32),
        "input_lengths": np.array([8], np.int32),
        "request_output_len": np.array([10], np.int32),
        "runtime_top_k": np.array([1], np.int32),
        "runtime_top_p": np.array([0.0], np.float32),
        "beam_search_diversity_rate": np.array([0.0], np.float32),
        "temperature": np.array([1.0], np.float32),
        "len_penalty": np.array([1.0], np.float32),
        "repetition_penalty": np.array([1.0], np.float32),
        "seed": np.array([0], np.uint64),
        "beam_width": np.array([1], np.int32),
    }
    if streaming:  # the decoupled model, perf_analyzer --streaming
        sample["streaming"] = np.array([True])
    data = {
        "data": [
            {
                k: {"content": v.flatten().tolist(), "shape": list(v.shape)}
                for k, v in sample.items()
            }
        ]
        * 4
    }
    path = tmp_path / "input_data.json"
    path.write_text(json.dumps(data))
    run = subprocess.run(
        [
            perf_analyzer_path(),
            "-m", "tensorrt_llm" if streaming else UNARY,
            "-b", "8", "--input-data", str(path), *(["--streaming"] if streaming else []),
            "-u", server.grpc_url, "-i", "grpc",
            "--measurement-mode", "count_windows", "--measurement-request-count", "4",
            # what is tested is that every batch is served, not that 2 shared cores give
            # steady windows (the project's sweep sets the same)
            "--stability-percentage", "999", "--max-trials", "3",
        ],
        env=perf_analyzer_env(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    # Triton's own count of the model's work: every request carried 8 rows and
    # succeeded. (The rows' tokens are checked by the gRPC batch tests above: with
    # --profile-export-file, perf_analyzer 2.51 reads outputs a response leaves out,
    # as TensorRT-LLM's responses do, from uninitialised memory, and sometimes writes
    # an empty file.)
    stats = {
        k: int(v)
        for k, v in re.findall(r"(Inference|Execution|Successful request) count: (\d+)", out)
    }
    assert stats["Execution"] > 0 and stats["Inference"] == 8 * stats["Execution"], out[-3000:]
    # (a decoupled request counts as successful at its final response: at concurrency 1
    # the one request in flight at the end of the window may not have it yet)
    in_flight = 1 if streaming else 0
    assert 0 <= stats["Execution"] - stats["Successful request"] <= in_flight, out[-3000:]


def test_streaming_refused_on_the_unary_model(server):
    with pytest.raises(InferenceServerException, match="streaming"):
        _grpc_infer(server, _request([1, 2], 3, streaming=np.array([[True]])))


def test_stock_client_defaults_pass_without_a_known_vocabulary(server):
    # inflight_batcher_llm_client.py without a tokenizer: end_id -1, pad_id 50256;
    # benchmark_core_model.py token-norm-dist: ids drawn from [0, 2^31 - 1)
    prompt = [2**31 - 2, 50256, 0, 123456789]
    extra = dict(
        end_id=np.array([[-1]], np.int32),
        pad_id=np.array([[50256]], np.int32),
        beam_width=np.array([[1]], np.int32),
        temperature=np.array([[1.0]], np.float32),
        runtime_top_k=np.array([[1]], np.int32),
        runtime_top_p=np.array([[0.0]], np.float32),
        streaming=np.array([[False]]),
    )
    ids = _grpc_infer(server, _request(prompt, 16, **extra)).as_numpy("output_ids")
    assert ids.shape == (1, 1, 20) and ids[0, 0, :4].tolist() == prompt


def test_token_counts_and_perf_metrics_outputs(server):
    flags = {
        name: np.array([[True]])
        for name in ("return_num_input_tokens", "return_num_output_tokens", "return_perf_metrics")
    }
    result = _grpc_infer(server, _request([1, 2, 3, 4, 5], 9, **flags))
    assert result.as_numpy("num_input_tokens").tolist() == [[5]]
    assert result.as_numpy("num_output_tokens").tolist() == [[9]]  # generated, not the prompt
    blocks = int(result.as_numpy("kv_cache_alloc_total_blocks")[0, 0])
    assert blocks >= 1
    times = [
        int(result.as_numpy(n)[0, 0])
        for n in ("arrival_time_ns", "first_scheduled_time_ns", "first_token_time_ns")
    ]
    last = int(result.as_numpy("last_token_time_ns")[0, 0])
    assert times == sorted(times) and times[-1] <= last


@pytest.mark.parametrize(
    "name, value, pattern",
    [
        ("return_log_probs", np.array([[True]]), "return_log_probs is not supported"),
        ("num_return_sequences", np.array([[2]], np.int32), "num_return_sequences must be 1"),
        ("lora_task_id", np.array([[3]], np.uint64), "lora_task_id is not supported"),
        ("runtime_top_p_decay", np.array([[0.5]], np.float32), "runtime_top_p_decay is not"),
        (
            "stop_words_list",
            np.array([[[5, 6], [3, -1]]], np.int32),
            "stop_words_list: offsets must increase within the 2 token ids, got 3",
        ),
        ("len_penalty", np.array([[np.inf]], np.float32), "len_penalty must be a finite number"),
        ("min_tokens", np.array([[-1]], np.int32), "min_tokens must be >= 0"),
    ],
)
def test_inputs_we_cannot_honour_are_refused_by_name(server, name, value, pattern):
    with pytest.raises(InferenceServerException, match=pattern):
        _grpc_infer(server, _request([1, 2, 3], 2, **{name: value}))
    assert server.is_ready(UNARY)


def test_inputs_at_their_default_are_accepted(server):
    extra = dict(
        return_log_probs=np.array([[False]]),
        num_return_sequences=np.array([[1]], np.int32),
        runtime_top_p_decay=np.array([[1.0]], np.float32),
        # TensorRT-LLM's preprocessing model sends [[0], [-1]] for "no words"
        stop_words_list=np.array([[[0], [-1]]], np.int32),  # (a stop word list: none)
        bad_words_list=np.array([[[0], [-1]]], np.int32),
        embedding_bias=np.zeros((1, 0), np.float32),
        beam_search_diversity_rate=np.array([[0.0]], np.float32),
        early_stopping=np.array([[True]]),
        min_tokens=np.array([[2]], np.int32),
    )
    assert _grpc_infer(server, _request([1, 2, 3], 4, **extra)).as_numpy("output_ids").shape == (
        1,
        1,
        7,
    )


def test_a_bad_row_refuses_the_whole_batch_by_row(server):
    tensors, _, _ = _ragged_batch(3)
    tensors["request_output_len"][1, 0] = 0
    with pytest.raises(InferenceServerException, match=r"row 1: request_output_len"):
        _grpc_infer(server, tensors)
    body = {"input_ids": [1, 2], "request_output_len": 2}
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{UNARY}/generate",
        data=json.dumps(body).encode(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
    except urllib.error.HTTPError as exc:  # pragma: no cover - shows the error
        raise AssertionError(exc.read()) from exc


def test_stop_ends_a_unary_request_with_the_tokens_so_far(server):
    server.load(UNARY, sim_profile="llama-3-8b-h100", sim_time_scale="1.0")
    results: queue.Queue = queue.Queue()
    # the stop request of TensorRT-LLM's client: [1, 1] ids, input_lengths 0, output len 0
    stop = {
        "input_ids": np.zeros((1, 1), np.int32),
        "input_lengths": np.zeros((1, 1), np.int32),
        "request_output_len": np.zeros((1, 1), np.int32),
        "stop": np.array([[True]]),
    }
    try:
        with grpcclient.InferenceServerClient(server.grpc_url) as c:
            c.async_infer(
                UNARY,
                _inputs(grpcclient, _request([1, 2, 3], 4000)),
                request_id="long",
                callback=lambda result, error: results.put((result, error)),
            )
            wait_for(
                lambda: server.metric("nv_trt_llm_request_metrics", UNARY, request_type="active"),
                timeout=30,
            )
            c.infer(UNARY, _inputs(grpcclient, stop), request_id="long")  # one response
            result, error = results.get(timeout=60)
    finally:
        server.load(UNARY, **FAST)
    assert error is None, error
    assert 3 < int(result.as_numpy("sequence_length")[0, 0]) < 3 + 4000


def test_stop_words_end_the_request_after_the_stop_sequence(server):
    # the simulated engine's pseudo-tokens follow the request number, which a fresh load
    # restarts: the same request after a reload generates the same tokens (a changed
    # parameter that does not touch tokens makes Triton reload)
    prompt = [4, 5, 6]
    server.load(UNARY, metrics_interval_ms="100", **FAST)
    plain = _grpc_infer(server, _request(prompt, 40)).as_numpy("output_ids")[0, 0].tolist()
    generated = plain[3:]
    stop = generated[5:7]  # a two-token stop sequence, as the preprocessing model sends it
    words = np.array([[stop, [2, -1]]], np.int32)  # [1, 2, n]: ids, then end offsets
    server.load(UNARY, metrics_interval_ms="101", **FAST)
    result = _grpc_infer(server, _request(prompt, 4000, stop_words_list=words))
    out = result.as_numpy("output_ids")[0, 0].tolist()
    first = next(i for i in range(len(generated)) if generated[i : i + 2] == stop)
    assert out == prompt + generated[: first + 2]  # cut after the stop sequence
    iterations = server.metric(
        "nv_trt_llm_general_metrics", UNARY, general_type="iteration_counter"
    )
    assert iterations is not None and iterations < 100  # stopped, not run to 4000
    _kv_returns_to_zero(server, UNARY)
    server.load(UNARY, **FAST)


def _stream_tokens(server, tensors: dict) -> list[int]:
    """One streaming request on the decoupled model: its tokens, in order."""
    responses: queue.Queue = queue.Queue()
    c = grpcclient.InferenceServerClient(server.grpc_url)
    c.start_stream(callback=lambda result, error: responses.put((result, error)))
    tokens: list[int] = []
    try:
        c.async_stream_infer(
            "tensorrt_llm", _inputs(grpcclient, tensors), enable_empty_final_response=True
        )
        while True:
            result, error = responses.get(timeout=60)
            assert error is None, error
            if result.as_numpy("output_ids") is not None:
                tokens += result.as_numpy("output_ids").reshape(-1).tolist()
            final = result.get_response().parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                return tokens
    finally:
        c.stop_stream()
        c.close()


def test_stop_words_end_a_stream_after_the_stop_sequence(server):
    streaming = np.array([[True]])
    server.load("tensorrt_llm", metrics_interval_ms="100", **FAST)  # fresh: same tokens
    generated = _stream_tokens(server, _request([4, 5, 6], 40, streaming=streaming))
    stop = generated[9:10]  # a one-token stop word
    first = generated.index(stop[0])
    server.load("tensorrt_llm", metrics_interval_ms="101", **FAST)
    words = np.array([[stop, [1]]], np.int32)
    tensors = _request([4, 5, 6], 4000, streaming=streaming, stop_words_list=words)
    assert _stream_tokens(server, tensors) == generated[: first + 1]
    iterations = server.metric(
        "nv_trt_llm_general_metrics", "tensorrt_llm", general_type="iteration_counter"
    )
    assert iterations is not None and iterations < 100
    _kv_returns_to_zero(server, "tensorrt_llm")
    server.load("tensorrt_llm", **FAST)

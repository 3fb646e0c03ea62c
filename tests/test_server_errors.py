"""Bad requests each get an error naming the problem; the server stays ready and
keeps serving good requests."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from triton_server import Stream

pytestmark = pytest.mark.server

# A small KV cache (4096 tokens) so "prompt longer than the KV cache" is cheap to send.
SMALL = dict(
    sim_profile="llama-2-13b-a100-40gb",
    sim_time_scale=0.2,
    batch_policy="adaptive",
    max_batch_size=8,
    max_tokens_in_paged_kv_cache=4096,
    max_new_tokens_limit=512,
    max_prompt_len=0,
    vocab_size=32000,  # a known vocabulary (the simulated engine has none of its own)
)


@pytest.fixture(scope="module")
def server(triton):
    triton.load("tensorrt_llm", **SMALL)
    return triton


def one_error(server, input_ids, output_len, **extra):
    s = Stream(server.grpc_url)
    try:
        s.send("bad", input_ids, output_len, **extra)
        s.wait(lambda: s.errors or "bad" in s.finished, timeout=15)
    finally:
        s.close()
    assert s.errors, f"expected an error, got {s.tokens}"
    return s.errors[0]


@pytest.mark.parametrize(
    "input_ids,output_len,extra,pattern",
    [
        ([], 4, {}, "input_ids is empty"),
        ([1, 2], 0, {}, r"request_output_len must be in \[1, 512\]"),
        ([1, 2], -5, {}, "request_output_len"),
        ([1, 2], 513, {}, "max_new_tokens_limit"),
        (list(range(1, 4000)), 200, {}, r"exceeds the KV cache \(4096 tokens\)"),
        ([1, 99999], 4, {}, "outside the vocabulary"),
        ([1, 2], 4, {"temperature": np.array([[-1.0]], np.float32)}, "temperature must be >= 0"),
        ([1, 2], 4, {"runtime_top_p": np.array([[2.0]], np.float32)}, "runtime_top_p"),
        ([1, 2], 4, {"beam_width": np.array([[4]], np.int32)}, "beam search is not supported"),
    ],
)
def test_bad_value_gets_named_error(server, input_ids, output_len, extra, pattern):
    import re

    message = one_error(server, input_ids, output_len, **extra)
    assert re.search(pattern, message), message
    assert server.is_ready()


def test_missing_input_ids_and_wrong_dtype(server):
    # Triton itself checks declared inputs and dtypes; the answer still names the input
    message = one_error(server, None, 4)
    assert "input_ids" in message
    message = one_error(server, np.array([[1, 2]], np.int64), 4)
    assert "input_ids" in message and "INT64" in message
    message = one_error(server, [1], None)  # no request_output_len
    assert "request_output_len" in message


def test_batch_whose_inputs_disagree_is_refused(server):
    # a batch of two rows is two requests (TensorRT-LLM's convention), but every input
    # needs one entry per row (Triton checks this before the model sees the request)
    message = one_error(
        server,
        np.array([[1, 2], [3, 4]], np.int32),
        None,
        request_output_len=np.array([[4]], np.int32),
        streaming=np.array([[True], [True]]),
    )
    assert "batch size does not match" in message, message


def test_http_generate_error_is_a_4xx_with_the_message(server):
    body = json.dumps({"input_ids": [1, 2], "request_output_len": 0}).encode()
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/tensorrt_llm/generate", data=body, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert 400 <= info.value.code < 500
    assert "request_output_len" in json.loads(info.value.read())["error"]


def test_server_still_serves_after_errors(server):
    s = Stream(server.grpc_url)
    try:
        s.send("bad1", [], 4)
        s.send("good", [1, 2, 3], 6)
        s.send("bad2", [1, 2], 0)
        s.wait(lambda: "good" in s.finished and len(s.errors) == 2, timeout=20)
    finally:
        s.close()
    assert len(s.tokens["good"]) == 6
    assert server.is_ready()
    rejected = server.metric("dynabatch_rejected_total")
    assert rejected is not None and rejected >= 2

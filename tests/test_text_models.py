"""Text in, text out against a real tritonserver: `preprocessing`, `postprocessing`,
`ensemble` and `tensorrt_llm_bls` round-trip text through the shipped tokenizer,
streaming and not; priority reaches `tensorrt_llm`; bad text requests get clear errors.

Expected text comes from the simulated engine itself: a freshly loaded `tensorrt_llm`
numbers its requests from 1 and the simulated tokens depend only on that number, so the
first request after a reload gets the same ids whether it came as ids or as text."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from text_client import FAST, PROMPT, TOKENIZER, TextStream, clean_prefix, fresh_ids, text_inputs

pytestmark = pytest.mark.server

EOS = 0  # <|endoftext|>, the shipped tokenizer's eos id


@pytest.fixture(scope="module")
def server(triton):
    triton.load("tensorrt_llm", **FAST)
    for name in ("preprocessing", "postprocessing", "ensemble", "tensorrt_llm_bls"):
        triton.load(name)
    return triton


def post(server, model: str, endpoint: str, body: dict) -> tuple[int, str]:
    url = f"http://{server.http_url}/v2/models/{model}/{endpoint}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def generate(server, model: str, stream: bool, max_tokens: int, **extra) -> tuple[str, dict]:
    s = TextStream(server.grpc_url)
    try:
        s.send(model, "r", **text_inputs(PROMPT, max_tokens, stream, **extra))
        s.wait({"r"})
    finally:
        s.close()
    assert not s.errors, s.errors
    return s.text("r"), s.outputs.get("r", {})


def test_preprocessing_tokenizes_with_the_shipped_tokenizer(server):
    s = TextStream(server.grpc_url)
    import tritonclient.grpc as grpc

    c = grpc.InferenceServerClient(server.grpc_url)
    try:
        q = grpc.InferInput("QUERY", [1, 1], "BYTES")
        q.set_data_from_numpy(np.array([[PROMPT.encode()]], dtype=object))
        n = grpc.InferInput("REQUEST_OUTPUT_LEN", [1, 1], "INT32")
        n.set_data_from_numpy(np.array([[5]], np.int32))
        r = c.infer("preprocessing", [q, n])
    finally:
        c.close()
        s.close()
    want = TOKENIZER.encode(PROMPT).ids
    assert r.as_numpy("INPUT_ID").tolist() == [want]
    assert r.as_numpy("REQUEST_INPUT_LEN").tolist() == [[len(want)]]
    assert r.as_numpy("OUT_END_ID").tolist() == [[EOS]]


def test_postprocessing_detokenizes_with_the_shipped_tokenizer(server):
    import tritonclient.grpc as grpc

    ids = TOKENIZER.encode("Good night, and thank you!").ids
    c = grpc.InferenceServerClient(server.grpc_url)
    try:
        t = grpc.InferInput("TOKENS_BATCH", [1, 1, len(ids) + 2], "INT32")
        t.set_data_from_numpy(np.array([[ids + [7, 7]]], np.int32))  # padding past the length
        n = grpc.InferInput("SEQUENCE_LENGTH", [1, 1], "INT32")
        n.set_data_from_numpy(np.array([[len(ids)]], np.int32))
        r = c.infer("postprocessing", [t, n])
    finally:
        c.close()
    assert r.as_numpy("OUTPUT").reshape(-1)[0].decode() == "Good night, and thank you!"


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_text_round_trip_not_streaming(server, model):
    ids = fresh_ids(server, 12)
    text, _ = generate(server, model, stream=False, max_tokens=12)
    assert text == TOKENIZER.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_text_round_trip_streaming(server, model):
    ids = fresh_ids(server, 16)
    n = clean_prefix(ids)
    assert n >= 2, f"the simulated ids start with partial characters: {ids}"
    s = TextStream(server.grpc_url)
    try:
        s.send(model, "r", **text_inputs(PROMPT, n, True))
        s.wait({"r"})
    finally:
        s.close()
    assert not s.errors
    assert s.text("r") == TOKENIZER.decode(ids[:n], skip_special_tokens=True)
    assert len([c for c in s.chunks["r"] if c]) >= 2  # text arrived in pieces


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
@pytest.mark.parametrize("stream", [False, True])
def test_token_counts(server, model, stream):
    ids = fresh_ids(server, 6)  # the same request's tokens
    _, outputs = generate(
        server,
        model,
        stream=stream,
        max_tokens=6,
        return_num_input_tokens=np.array([[True]]),
        return_num_output_tokens=np.array([[True]]),
    )
    assert outputs["num_output_tokens"] == len(ids)  # summed over the responses
    if model == "tensorrt_llm_bls":  # the ensemble cannot report the prompt's length
        assert outputs["num_input_tokens"] == len(TOKENIZER.encode(PROMPT).ids)


def test_bls_stop_words_end_generation_early(server):
    ids = fresh_ids(server, 40)
    full = TOKENIZER.decode(ids, skip_special_tokens=True)
    stop = full[len(full) // 3 : len(full) // 3 + 2]
    text, outputs = generate(
        server,
        "tensorrt_llm_bls",
        stream=True,
        max_tokens=40,
        stop_words=np.array([[stop.encode()]], dtype=object),
        return_num_output_tokens=np.array([[True]]),
    )
    assert text == full[: full.index(stop)]
    assert outputs["num_output_tokens"] < 40  # generation stopped, not just the text
    used = lambda: server.metric("nv_trt_llm_kv_cache_block_metrics", kv_cache_block_type="used")
    from triton_server import wait_for

    wait_for(lambda: used() == 0, timeout=10)


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_priority_reaches_tensorrt_llm(server, model):
    # tensorrt_llm validates the request parameter `priority`: a bad value coming back
    # from it proves the parameter went through
    code, body = post(
        server, model, "generate", {"text_input": PROMPT, "max_tokens": 3, "priority": "high"}
    )
    assert code == 400 and "'priority' must be an integer" in body
    code, body = post(
        server, model, "generate", {"text_input": PROMPT, "max_tokens": 3, "priority": 5}
    )
    assert code == 200 and json.loads(body)["text_output"]


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
@pytest.mark.parametrize(
    "body, message",
    [
        ({"text_input": "", "max_tokens": 4}, "text_input is empty"),
        ({"text_input": "hi", "max_tokens": 0}, "max_tokens must be >= 1, got 0"),
        (
            {"text_input": "hi", "max_tokens": 4, "num_return_sequences": 2},
            "num_return_sequences must be 1",
        ),
        ({"text_input": "hi"}, "max_tokens"),
    ],
)
def test_bad_text_request_gets_a_clear_error(server, model, body, message):
    code, text = post(server, model, "generate", body)
    assert code == 400 and message in json.loads(text)["error"]
    code, text = post(server, model, "generate", {"text_input": PROMPT, "max_tokens": 2})
    assert code == 200  # nothing else is lost


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_wrong_type_gets_tritons_error_and_server_stays_ready(server, model):
    s = TextStream(server.grpc_url)
    try:
        inputs = text_inputs(PROMPT, 4, False)
        inputs["max_tokens"] = np.array([[4.0]], np.float32)
        s.send(model, "bad", **inputs)
        s.wait({"bad"})
    finally:
        s.close()
    assert "max_tokens" in s.errors["bad"] and "FP32" in s.errors["bad"]
    assert server.is_ready(model)


E2E_CLIENT = os.environ.get("DYNABATCH_E2E_CLIENT", "")


@pytest.mark.skipif(
    not os.path.isfile(E2E_CLIENT),
    reason="set DYNABATCH_E2E_CLIENT to TensorRT-LLM's end_to_end_grpc_client.py (not vendored)",
)
@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
@pytest.mark.parametrize("streaming", [False, True])
def test_tensorrt_llms_end_to_end_client_runs_unmodified(server, model, streaming):
    cmd = [sys.executable, E2E_CLIENT, "-u", server.grpc_url, "-p", PROMPT, "-o", "8"]
    cmd += ["--model-name", model] + (["--streaming"] if streaming else [])
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Received an error" not in run.stdout
    assert run.stdout.strip().splitlines()[-1]  # the answer's text


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_accepts_the_inputs_tritons_openai_frontend_sends(server, model):
    """Triton's own OpenAI frontend (server python/openai, GPU image) sends these to a
    TensorRT-LLM text model; each must be declared, or Triton refuses the request."""
    extra = dict(
        stop_words=np.array([[b"zzzz"]], dtype=object),
        top_p=np.array([[0.9]], np.float32),
        temperature=np.array([[0.7]], np.float32),
        seed=np.array([[7]], np.uint64),
        presence_penalty=np.array([[0.1]], np.float32),
        frequency_penalty=np.array([[0.1]], np.float32),
        repetition_penalty=np.array([[1.1]], np.float32),
        exclude_input_in_output=np.array([[True]]),
        return_num_input_tokens=np.array([[True]]),
        return_num_output_tokens=np.array([[True]]),
    )
    for stream in (False, True):
        text, outputs = generate(server, model, stream=stream, max_tokens=4, **extra)
        assert isinstance(text, str) and 1 <= outputs["num_output_tokens"] <= 4

"""The OpenAI-compatible frontend against a real tritonserver, through the official
`openai` client: streamed chat with exact usage, completions, stop, models, /metrics on
the same port, and errors in OpenAI's format."""

import json
import urllib.error
import urllib.request

import openai
import pytest
from openai_frontend import Frontend
from text_client import FAST, TOKENIZER, clean_prefix, fresh_ids

pytestmark = pytest.mark.server

MESSAGES = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "What is the batch limit?"},
]
# The shipped tokenizer's ChatML template, written out by hand.
CHATML = (
    "<|im_start|>system\nYou are brief.<|im_end|>\n"
    "<|im_start|>user\nWhat is the batch limit?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def frontend(triton):
    triton.load("tensorrt_llm", **FAST)
    for name in ("ensemble", "tensorrt_llm_bls"):
        triton.load(name)
    fe = Frontend(triton)
    try:
        yield fe
    finally:
        fe.stop()


@pytest.fixture
def client(frontend):
    c = openai.OpenAI(base_url=f"{frontend.url}/v1", api_key="unused", max_retries=0)
    yield c
    c.close()


def test_streamed_chat_completion_with_usage(triton, client):
    ids = fresh_ids(triton, 16)
    n = clean_prefix(ids)
    assert n >= 2
    stream = client.chat.completions.create(
        model="tensorrt_llm_bls",
        messages=MESSAGES,
        max_tokens=n,
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.7,
        user="team-a",
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content == TOKENIZER.decode(ids[:n])
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["length"]
    usage = chunks[-1].usage
    assert usage.prompt_tokens == len(TOKENIZER.encode(CHATML).ids)
    assert usage.completion_tokens == n
    assert usage.total_tokens == usage.prompt_tokens + n


@pytest.mark.parametrize("model", ["tensorrt_llm_bls", "ensemble"])
def test_completion_not_streamed(triton, client, model):
    ids = fresh_ids(triton, 10)
    r = client.completions.create(model=model, prompt="Hello there", max_tokens=10)
    assert r.choices[0].text == TOKENIZER.decode(ids)
    assert r.usage.prompt_tokens == len(TOKENIZER.encode("Hello there").ids)
    assert r.usage.completion_tokens == len(ids)


def test_stop_ends_the_chat_completion(triton, client):
    ids = fresh_ids(triton, 30)
    full = TOKENIZER.decode(ids)
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    r = client.chat.completions.create(
        model="tensorrt_llm_bls", messages=MESSAGES, max_tokens=30, stop=[stop]
    )
    assert r.choices[0].message.content == full[: full.index(stop)]
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < 30


def test_models_and_metrics_on_the_serving_port(frontend, client):
    assert {m.id for m in client.models.list()} == {"tensorrt_llm_bls", "ensemble"}
    with urllib.request.urlopen(f"{frontend.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert 'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used"' in text


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"model": "no-such-model", "prompt": "hi"}, 404, "model"),
        ({"model": "tensorrt_llm_bls", "prompt": "", "max_tokens": 4}, 400, "prompt"),
        ({"model": "tensorrt_llm_bls", "prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "tensorrt_llm_bls", "prompt": "hi", "max_tokens": "many"}, 400, "max_tokens"),
        ({"model": "tensorrt_llm_bls", "prompt": "hi", "temperature": 9}, 400, "temperature"),
    ],
)
def test_bad_request_gets_an_openai_error(frontend, client, body, status, param):
    req = urllib.request.Request(
        f"{frontend.url}/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == status
    error = json.loads(err.value.read())["error"]
    assert error["param"] == param and error["message"]
    assert error["type"] == "invalid_request_error"
    if status == 404:
        assert error["code"] == "model_not_found"
    # nothing else is lost: the next request is served
    r = client.completions.create(model="tensorrt_llm_bls", prompt="hi", max_tokens=2)
    assert r.usage.completion_tokens == 2


def test_openai_client_raises_on_unknown_chat_model(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4", messages=MESSAGES)
    assert err.value.body["code"] == "model_not_found"


def test_client_leaving_a_stream_ends_the_generation(triton, frontend):
    """A client that disconnects mid-stream: the frontend cancels the Triton request and
    tensorrt_llm ends it long before max_tokens would have been reached. (Through the
    BLS: Triton 2.51 does not pass a cancellation on to an ensemble's steps.)"""
    import http.client

    from triton_server import wait_for

    conn = http.client.HTTPConnection("127.0.0.1", frontend.port, timeout=30)
    body = {"model": "tensorrt_llm_bls", "messages": MESSAGES, "max_tokens": 4000, "stream": True}
    headers = {"Content-Type": "application/json"}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    resp = conn.getresponse()
    assert resp.status == 200
    seen = b""
    while seen.count(b"data: ") < 3:  # a few streamed events: the request is running
        seen += resp.read1(4096)
    active = lambda: triton.metric("nv_trt_llm_request_metrics", request_type="active")
    used = lambda: triton.metric("nv_trt_llm_kv_cache_block_metrics", kv_cache_block_type="used")
    wait_for(lambda: active() == 1, timeout=5)
    conn.sock.close()  # leave without reading the rest
    conn.close()
    # 4000 tokens at >= 4 ms a step take >= 16 s; a cancelled request ends far sooner
    wait_for(lambda: active() == 0 and used() == 0, timeout=10)

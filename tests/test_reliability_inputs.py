"""Bad input against a real tritonserver: every case of the corpus (tests/reliability/
corpus.py) gets one error response naming the problem, the server stays ready, and
long streams running meanwhile complete exactly. Over-limit requests never reach the
queue or the engine (counters on /metrics)."""

import json
import re
import time
import urllib.error
import urllib.request

import grpc
import pytest
from reliability.client import Lane, gen_tensors, make_request
from reliability.corpus import CONFIG, GRPC_CASES, HTTP_CASES
from triton_server import wait_for

pytestmark = pytest.mark.server
MODEL = "tensorrt_llm"
LONG = 600  # tokens per long stream: several seconds at sim_time_scale 0.5


@pytest.fixture(scope="module")
def server(triton):
    triton.load(MODEL, **CONFIG)
    return triton


def _http_error(server, body: bytes):
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{MODEL}/generate", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_bad_input_corpus_named_errors_server_ready_streams_unaffected(server):
    assert len(GRPC_CASES) + len(HTTP_CASES) >= 30
    outcomes, lock = {}, __import__("threading").Lock()
    channel = grpc.insecure_channel(
        server.grpc_url,
        options=[
            ("grpc.max_send_message_length", 16 << 20),
            ("grpc.max_receive_message_length", 16 << 20),
        ],
    )
    longs = Lane(channel, outcomes, lock)
    bad = Lane(channel, outcomes, lock)
    try:
        for i in range(3):
            longs.send(make_request(MODEL, f"long{i}", gen_tensors([7 + i, 8, 9], LONG)))
        wait_for(lambda: all(outcomes[f"long{i}"].tokens >= 2 for i in range(3)), timeout=20)
        report, bad_outs = [], []
        for n, (name, tensors, params, pattern) in enumerate(GRPC_CASES):
            out = bad.send(make_request(MODEL, f"bad{n}", tensors, params))
            assert out.done.wait(15), f"{name}: no answer within 15 s"
            assert out.finals == 1 and len(out.errors) == 1 and out.tokens == 0, (name, out)
            assert re.search(pattern, out.errors[0]), f"{name}: {out.errors[0]!r}"
            report.append((name, out.errors[0]))
            bad_outs.append((name, out))
        for name, body, pattern, statuses in HTTP_CASES:
            status, text = _http_error(server, body)
            assert status in statuses, (name, status, text)
            message = json.loads(text)["error"]
            assert re.search(pattern, message), f"{name}: {message!r}"
            report.append((f"{name} (HTTP {status})", message))
        assert server.is_ready()
        # the corpus ran while the long streams were decoding
        running = [i for i in range(3) if not outcomes[f"long{i}"].terminal]
        assert running, "the long streams finished before the corpus: nothing was tested alongside"
        for i in range(3):
            out = outcomes[f"long{i}"]
            assert out.done.wait(60), f"long{i} did not finish"
            assert out.finals == 1 and not out.errors and out.tokens == LONG, out
        assert longs.close() and bad.close()
        # the server ended the streams, so a second final would have arrived by now
        for name, out in bad_outs:
            assert out.finals == 1 and len(out.errors) == 1, (name, out)
    finally:
        channel.close()
    print(f"\nbad-input corpus: {len(report)} cases, each refused with a named error:")
    for name, message in report:
        print(f"  {name:40s} -> {message[:110]}")
    # a good request is still served
    status, text = _http_error(server, b'{"input_ids": [1, 2, 3], "request_output_len": 5}')
    assert status == 200 and len(json.loads(text)["output_ids"]) == 5, text


def _counts(server):
    text = server.metrics()
    get = lambda fam, **kw: server.metric(fam, model=MODEL, text=text, **kw)
    return dict(
        submitted=get("dynabatch_requests_total", outcome="submitted"),
        accepted=get("dynabatch_requests_total", outcome="accepted"),
        rejected=get("dynabatch_rejected_total"),
        queue=get("dynabatch_queue_length"),
        iterations=get("nv_trt_llm_general_metrics", general_type="iteration_counter"),
    )


def _settled(server):
    """The counters once two reads 0.3 s apart (3 metrics refreshes) agree."""
    first = _counts(server)
    time.sleep(0.3)
    return first if _counts(server) == first else None


def test_over_limit_requests_never_reach_the_queue(server):
    """max_prompt_len and max_new_tokens_limit (and the KV bound) are checked in
    execute(), before the core's queue: accepted and the engine's iteration counter
    do not move, rejected and submitted grow by one per request."""
    before = wait_for(lambda: _settled(server), timeout=10)
    channel = grpc.insecure_channel(server.grpc_url)
    outcomes, lock = {}, __import__("threading").Lock()
    lane = Lane(channel, outcomes, lock)
    try:
        cases = [
            ("prompt", gen_tensors([3] * 3001, 4), "max_prompt_len"),
            ("output", gen_tensors([3], 2049), "max_new_tokens_limit"),
            ("kv", gen_tensors([3] * 2100, 2048), "exceeds the KV cache"),
        ]
        for rid, tensors, pattern in cases:
            out = lane.send(make_request(MODEL, rid, tensors))
            assert out.done.wait(10) and pattern in out.errors[0], out
        lane.close()
    finally:
        channel.close()
    after = wait_for(lambda: _settled(server), timeout=10)
    print("\nover-limit requests: before", before, "after", after)
    assert after["rejected"] == before["rejected"] + 3
    assert after["submitted"] == before["submitted"] + 3
    assert after["accepted"] == before["accepted"], (
        "an over-limit request was accepted into the queue"
    )
    assert after["iterations"] == before["iterations"], "an over-limit request reached the engine"
    assert after["queue"] == 0

"""Request parameters: the documented ones work, any other is refused by name
(HTTP /generate turns every JSON key that is not an input into a parameter, so a typo
used to be accepted and silently ignored)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from dynabatch.request_mapping import REQUEST_PARAMETERS, RequestError, request_parameters
from triton_server import Stream

MODEL = "tensorrt_llm"


def test_documented_parameters_are_known():
    assert {"priority", "request_priority", "tenant", "user", "true_output_len"} <= (
        REQUEST_PARAMETERS
    )
    assert {"inject_fault", "fault_after_iterations", "fault_stall_s"} <= REQUEST_PARAMETERS
    # TensorRT-LLM's inflight_batcher_llm_client.py sends it with its stop requests
    assert request_parameters('{"Streaming": true}') == {"Streaming": True}


@pytest.mark.parametrize("name", sorted(REQUEST_PARAMETERS))
def test_each_known_parameter_passes(name):
    assert request_parameters(json.dumps({name: 1})) == {name: 1}


def test_unknown_parameters_are_refused_by_name():
    with pytest.raises(RequestError, match=r"unknown request parameter 'priorty'; known: "):
        request_parameters('{"priorty": 2}')
    with pytest.raises(RequestError, match=r"unknown request parameters 'a', 'b'"):
        request_parameters('{"b": 1, "priority": 1, "a": 2}')


def _generate(server, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{MODEL}/generate",
        data=json.dumps(body).encode(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.server
def test_http_and_grpc_refuse_unknown_parameters_and_serve_known_ones(triton):
    triton.load(MODEL)
    ok = {"input_ids": [1, 2, 3], "request_output_len": 3}
    for extra in ({}, {"priority": 2}, {"tenant": "team-a"}, {"priority": 1, "tenant": "b"}):
        status, body = _generate(triton, {**ok, **extra})
        # TensorRT-LLM's default: the output echoes the 3-token prompt, then 3 new tokens
        assert status == 200 and len(body["output_ids"]) == 3 + 3, (extra, body)
        assert body["output_ids"][:3] == [1, 2, 3]
    status, body = _generate(triton, {**ok, "request_output_lenght": 9})
    assert status == 400
    assert "unknown request parameter 'request_output_lenght'" in body["error"]
    s = Stream(triton.grpc_url)
    try:
        s.send("known", [1, 2, 3], 3, parameters={"request_priority": 1, "tenant": "a"})
        s.send("typo", [1, 2, 3], 3, parameters={"tenent": "a"})
        s.wait(lambda: "known" in s.finished and s.errors, timeout=30)
        assert len(s.tokens["known"]) == 3
        assert len(s.errors) == 1 and "unknown request parameter 'tenent'" in s.errors[0]
    finally:
        s.close()
    assert triton.is_ready(MODEL)

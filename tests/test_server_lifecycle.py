"""Unload and shutdown with requests in flight.

Triton calls finalize only after every in-flight request of a decoupled model has
sent its final response, so an unload drains: accepted requests complete. A server
stop must not hang on a long request: scripts/serve stops it within its exit timeout
plus a grace period.
"""

import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
from triton_server import MODEL_REPOSITORY, ROOT, Stream, free_port, set_parameters, wait_for

pytestmark = pytest.mark.server


def test_unload_drains_in_flight_and_queued_requests(triton):
    triton.load(
        "tensorrt_llm",
        sim_time_scale=0.2,
        batch_policy="static",
        static_batch_size=1,
        max_batch_size=4,
    )
    s = Stream(triton.grpc_url)
    try:
        s.send("running", [1, 2, 3], 150)
        s.send("queued", [4, 5, 6], 150)  # waits behind it (limit 1)
        s.wait(lambda: len(s.tokens.get("running", [])) >= 2, timeout=20)
        triton.unload("tensorrt_llm")
        s.wait(lambda: {"running", "queued"} <= s.finished, timeout=30)  # raises past it
    finally:
        s.close()
    assert not s.errors
    assert len(s.tokens["running"]) == 150 and len(s.tokens["queued"]) == 150
    assert not triton.is_ready()
    triton.load("tensorrt_llm")
    assert triton.is_ready()


def test_scripts_serve_serves_and_stops_promptly_with_a_stream_in_flight(tmp_path):
    """scripts/serve: prints the URLs, serves, and on SIGTERM never hangs, even though
    tritonserver 2.51 itself can hang after its exit timeout with a stream in flight."""
    repo = tmp_path / "models"
    shutil.copytree(MODEL_REPOSITORY, repo)
    config = repo / "tensorrt_llm" / "config.pbtxt"
    config.write_text(set_parameters(config.read_text(), {"sim_time_scale": "1.0"}))
    http, grpc, metrics = free_port(), free_port(), free_port()
    env = dict(os.environ, DYNABATCH_EXIT_TIMEOUT="2")
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [
            str(ROOT / "scripts" / "serve"),
            str(repo),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _ready(http), timeout=60, interval=0.2)
        s = Stream(f"127.0.0.1:{grpc}")
        s.send("long", [1, 2, 3], 4000)  # over a minute of decoding
        s.wait(lambda: len(s.tokens.get("long", [])) >= 2, timeout=20)
        t0 = time.monotonic()
        proc.terminate()
        proc.wait(timeout=30)
        stop_s = time.monotonic() - t0
        s.client.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
    out = (tmp_path / "serve.log").read_text(errors="replace")
    assert f"http://127.0.0.1:{http}" in out and f"127.0.0.1:{grpc}" in out
    assert f"http://127.0.0.1:{metrics}/metrics" in out
    assert stop_s < 2 + 5 + 3, f"scripts/serve took {stop_s:.1f} s to stop"
    assert len(s.tokens["long"]) < 4000
    # no Python-backend stub of that server is left behind
    wait_for(
        lambda: (
            str(repo)
            not in subprocess.run(
                ["ps", "-eo", "args", "-ww"], capture_output=True, text=True
            ).stdout
        ),
        timeout=20,
    )


def _ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False

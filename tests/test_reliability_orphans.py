"""No orphaned Python-backend stubs and no leftover /dev/shm regions when tritonserver
dies under load (docs/RELIABILITY.md, "Orphaned stubs").

Before the lifeline (dynabatch.lifeline), a stub whose server was killed blocked for
ever in a metric write to the dead server and stayed under PID 1 with its region.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from dynabatch.lifeline import WATCH_SCRIPT
from dynabatch.lifeline_watch import start_time
from dynabatch.live.leftovers import all_stubs, shm_regions, stubs_of
from triton_server import Stream, TritonServer

pytestmark = pytest.mark.server

MODELS = ("tensorrt_llm", "tensorrt_llm_static")
KILL_RUNS = int(os.environ.get("DYNABATCH_KILL9_RUNS", "20"))
AFTER_KILL_S = 15.0  # the bound the issue sets: nothing left 15 s after the kill


def _left(stub_pids: set[int], regions: set[str]) -> tuple[list[int], list[str]]:
    live = sorted(s.pid for s in all_stubs() if s.pid in stub_pids)
    return live, sorted(regions & shm_regions())


def _wait_clean(stub_pids: set[int], regions: set[str], bound_s: float):
    """Poll until the stubs and regions are gone or `bound_s` passed; return what is
    left and the seconds it took."""
    t0 = time.monotonic()
    left = _left(stub_pids, regions)
    while (left[0] or left[1]) and time.monotonic() - t0 < bound_s:
        time.sleep(0.1)
        left = _left(stub_pids, regions)
    return left, time.monotonic() - t0


def _open_streams(server: TritonServer) -> list[Stream]:
    """Two long streams per model, each with tokens flowing."""
    streams = []
    for model in MODELS:
        for k in range(2):
            s = Stream(server.grpc_url, model)
            s.send(f"long-{k}", [1, 2, 3], 4000)
            streams.append(s)
    for s in streams:
        s.wait(lambda s=s: s.count, timeout=30)
    return streams


def _close_quietly(streams: list[Stream]) -> None:
    for s in streams:
        try:
            s.close()
        except Exception:
            pass


@pytest.mark.slow
def test_kill9_with_open_streams_leaves_no_stub_and_no_shm(tmp_path):
    """KILL_RUNS x: both shipped models loaded, four streams decoding, kill -9 the
    server: within 15 s no stub of it runs and none of its regions is in /dev/shm."""
    outcomes = []
    for run in range(KILL_RUNS):
        server = TritonServer(tmp_path / f"run{run}").start()
        streams: list[Stream] = []
        try:
            for model in MODELS:
                server.load(model)
            stubs = stubs_of(server.proc.pid)
            assert len(stubs) == len(MODELS), stubs
            regions = {s.shm_region for s in stubs if s.shm_region}
            assert len(regions) == len(MODELS)
            streams = _open_streams(server)
            server.proc.kill()
            server.proc.wait(10)
            (live, shm), took = _wait_clean({s.pid for s in stubs}, regions, AFTER_KILL_S)
            outcomes.append((run, live, shm, round(took, 2)))
        finally:
            _close_quietly(streams)
            server.stop()  # ends anything left, so one failure does not leak
    print("\nkill -9 runs (run, stubs left, regions left, seconds):", outcomes)
    assert [o for o in outcomes if o[1] or o[2]] == []


def test_stream_rejected_then_cancelled_then_sigterm_leaves_nothing(tmp_path):
    """The non-graceful exit the issue found: a stream request Triton rejects, then
    stop_stream(cancel_requests=True), then SIGTERM (and a kill when the server hangs
    on exit): the stub does not outlive the server."""
    import numpy as np

    server = TritonServer(tmp_path / "srv").start()
    try:
        server.load("tensorrt_llm")
        stubs = stubs_of(server.proc.pid)
        regions = {s.shm_region for s in stubs if s.shm_region}
        s = Stream(server.grpc_url)
        s.send("ok", [1, 2, 3], 4000)
        s.send("bad", [1, 2, 3], 4, undeclared=np.asarray([[1]], dtype=np.int32))
        s.wait(lambda: s.errors and s.count, timeout=30)
        s.close(cancel=True)
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(server.exit_timeout_s + 15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)
        (live, shm), _ = _wait_clean({x.pid for x in stubs}, regions, AFTER_KILL_S)
        assert (live, shm) == ([], [])
    finally:
        server.stop()


def _spawn(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def test_watcher_kills_a_stuck_stub_and_removes_its_region_once_the_server_is_gone():
    """The watcher against stand-in processes: a 'server' and a 'stub' that ignores
    SIGTERM and never exits (as the stub blocked in a metric write did)."""
    region = f"triton_python_backend_shm_region_i16test-{uuid.uuid4()}"
    path = Path("/dev/shm") / region
    path.write_bytes(b"\0" * 64)
    server = _spawn("import time; time.sleep(600)")
    stub = _spawn(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    )
    watcher = subprocess.Popen(
        [sys.executable, "-I", str(WATCH_SCRIPT), f"--stub-pid={stub.pid}"]
        + [f"--server-pid={server.pid}", f"--shm-region={region}", "--grace-s=0.5"]
        + ["--poll-s=0.05"]
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):  # nothing to do while the server lives
            watcher.wait(1.0)
        assert stub.poll() is None and path.exists()
        server.kill()
        server.wait(5)
        assert watcher.wait(10) == 0
        assert stub.wait(5) == -signal.SIGKILL
        assert not path.exists()
    finally:
        for p in (server, stub, watcher):
            if p.poll() is None:
                p.kill()
                p.wait(5)
        path.unlink(missing_ok=True)


def test_watcher_leaves_when_its_stub_ends_and_never_touches_the_region():
    """A normal unload: the stub exits while the server lives; the watcher exits too and
    leaves the region to the server."""
    region = f"triton_python_backend_shm_region_i16test-{uuid.uuid4()}"
    path = Path("/dev/shm") / region
    path.write_bytes(b"\0" * 64)
    server = _spawn("import time; time.sleep(600)")
    stub = _spawn("import time; time.sleep(600)")
    watcher = subprocess.Popen(
        [sys.executable, "-I", str(WATCH_SCRIPT), f"--stub-pid={stub.pid}"]
        + [f"--server-pid={server.pid}", f"--shm-region={region}", "--poll-s=0.05"]
    )
    try:
        stub.terminate()
        stub.wait(5)
        assert watcher.wait(10) == 0
        assert path.exists() and start_time(server.pid) is not None
    finally:
        for p in (server, stub, watcher):
            if p.poll() is None:
                p.kill()
                p.wait(5)
        path.unlink(missing_ok=True)


def test_watcher_removes_the_region_when_stub_and_server_end_between_two_polls(monkeypatch):
    """kill -9 of the server, and the stub gone by the watcher's next poll without
    removing its region (seen once in 20 kill -9 runs of the test above, a region left
    15 s after the kill): the watcher finds both gone and removes the region. The
    watcher's view of /proc is scripted: both alive at its start, both gone after."""
    from dynabatch import lifeline_watch

    alive = {111: 1000, 222: 2000}  # stub, server -> start time
    seen: list[int] = []

    def start_time(pid: int) -> int | None:
        seen.append(pid)
        return alive[pid] if len(seen) <= 2 else None  # the two reads at start, then gone

    removed: list[str] = []
    monkeypatch.setattr(lifeline_watch, "start_time", start_time)
    monkeypatch.setattr(lifeline_watch, "remove_region", removed.append)
    assert lifeline_watch.watch(111, 222, "region-x", grace_s=0.5, poll_s=0.05) == 0
    assert removed == ["region-x"]


def test_watcher_keeps_the_region_when_only_its_stub_ended(monkeypatch):
    from dynabatch import lifeline_watch

    calls: list[int] = []

    def start_time(pid: int) -> int | None:
        calls.append(pid)
        if pid == 111 and len(calls) > 2:
            return None  # the stub ended (a model unload); the server lives
        return {111: 1000, 222: 2000}[pid]

    removed: list[str] = []
    monkeypatch.setattr(lifeline_watch, "start_time", start_time)
    monkeypatch.setattr(lifeline_watch, "remove_region", removed.append)
    assert lifeline_watch.watch(111, 222, "region-x", grace_s=0.5, poll_s=0.05) == 0
    assert removed == []


def _fake_stub(server_pid: int) -> subprocess.Popen:
    """A process whose command line looks like a stub of `server_pid` (argv[0] ends in
    triton_python_backend_stub, argv[5] is the server PID): `sleep` sums its args."""
    return subprocess.Popen(
        ["bash", "-c", 'exec -a /x/triton_python_backend_stub sleep "$@"', "-"]
        + ["600", "0", "0", "0", str(server_pid)]
    )


def test_end_leftovers_ends_only_the_stubs_of_the_given_server():
    from dynabatch.live.leftovers import end_leftovers

    mine, other = _fake_stub(999_991), _fake_stub(999_992)
    try:
        deadline = time.monotonic() + 10
        while len({s.pid for s in stubs_of(999_991) + stubs_of(999_992)}) < 2:
            assert time.monotonic() < deadline, "fake stubs not visible"
            time.sleep(0.02)
        ended = end_leftovers(999_991, wait_s=0.2)
        assert [s.pid for s in ended] == [mine.pid]
        assert mine.wait(5) == -signal.SIGKILL
        assert other.poll() is None and [s.pid for s in stubs_of(999_992)] == [other.pid]
    finally:
        for p in (mine, other):
            if p.poll() is None:
                p.kill()
                p.wait(5)

"""Own tritonserver instances for tests that kill a stub or stop the server (the shared
session server must not be disturbed), and a /proc scan for the Python-backend stub."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from triton_server import TritonServer


def stub_pids(server_pid: int) -> list[int]:
    """Children of `server_pid` that run triton_python_backend_stub (/proc scan)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server_pid and b"triton_python_backend_stub" in cmd:
            found.append(int(entry.name))
    return sorted(found)


def stop_with(server: TritonServer, sig: int, bound_s: float) -> float:
    """Send `sig`; return the seconds until the server exited. When it has not exited
    after bound_s, kill it (and its stubs) and return inf."""
    t0 = time.monotonic()
    server.proc.send_signal(sig)
    deadline = t0 + bound_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return time.monotonic() - t0
        time.sleep(0.05)
    server.proc.kill()
    server.proc.wait(10)
    server.end_leftovers()  # its stubs and their regions (see dynabatch.live.leftovers)
    return float("inf")


def own_server(workdir) -> TritonServer:
    """A private tritonserver (exit timeout 5 s, see tests/triton_server.py)."""
    return TritonServer(Path(workdir)).start()


__all__ = ["stub_pids", "stop_with", "own_server", "signal", "os"]

"""Find and end what a stopped tritonserver left behind: its Python-backend stubs
(children, or orphans under PID 1 once it died) and their /dev/shm regions.

A stub is recognised as one server's by its command line, which names the server's
PID (Triton passes it so the stub can watch its parent), never by its name alone:
other servers on the same machine are left alone.

    python -m dynabatch.live.leftovers --server-pid N [--wait-s 5]

reports to stderr and exits 1 when it had to end something (used by scripts/serve).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..lifeline import STUB_PARENT_ARG, shm_region_of, stub_argv
from ..lifeline_watch import start_time

SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"


@dataclass(frozen=True)
class Stub:
    pid: int
    server_pid: int  # the tritonserver that started it
    model_path: str
    shm_region: str | None


def all_stubs() -> list[Stub]:
    """Every live (non-zombie) triton_python_backend_stub on the machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = stub_argv(entry.name)
        if not argv or "triton_python_backend_stub" not in argv[0]:
            continue
        if len(argv) <= STUB_PARENT_ARG or start_time(int(entry.name)) is None:
            continue
        try:
            server = int(argv[STUB_PARENT_ARG])
        except ValueError:
            continue
        found.append(Stub(int(entry.name), server, argv[1], shm_region_of(argv)))
    return sorted(found, key=lambda s: s.pid)


def stubs_of(server_pid: int) -> list[Stub]:
    return [s for s in all_stubs() if s.server_pid == server_pid]


def shm_regions() -> set[str]:
    """Names of the Python backend's shared-memory regions now in /dev/shm."""
    try:
        return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(SHM_PREFIX)}
    except OSError:
        return set()


def end_stubs(stubs: list[Stub], timeout_s: float = 5.0) -> None:
    """SIGKILL `stubs` (already known to be ours), wait for them, remove their regions."""
    for s in stubs:
        try:
            os.kill(s.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while any(start_time(s.pid) is not None for s in stubs) and time.monotonic() < deadline:
        time.sleep(0.05)
    for s in stubs:
        if s.shm_region:
            try:
                (SHM_DIR / s.shm_region).unlink()
            except OSError:
                pass


def end_leftovers(server_pid: int, wait_s: float = 5.0) -> list[Stub]:
    """After `server_pid` exited: wait up to `wait_s` for its stubs to exit by themselves
    (the lifeline watcher ends a stuck one within its grace period), then end the rest.
    Returns the stubs that had to be ended."""
    deadline = time.monotonic() + wait_s
    left = stubs_of(server_pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = stubs_of(server_pid)
    if left:
        end_stubs(left)
    return left


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="end the stubs a stopped tritonserver left")
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--wait-s", type=float, default=5.0)
    a = p.parse_args(argv)
    left = end_leftovers(a.server_pid, a.wait_s)
    for s in left:
        print(
            f"leftovers: stub {s.pid} of tritonserver {a.server_pid} ({s.model_path}) "
            f"was still running {a.wait_s:g} s after the server; killed it"
            + (f" and removed /dev/shm/{s.shm_region}" if s.shm_region else ""),
            file=sys.stderr,
        )
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())

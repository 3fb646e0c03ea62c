"""The lifeline watcher: a separate process that ends a stub orphaned by its server.

Started by dynabatch.lifeline with `python -I` (stdlib only, imports nothing of
dynabatch, so it runs even when the stub is stuck holding its GIL). It polls
/proc: when the stub exits it exits too; when the server exits (or is a zombie) it
gives the stub `--grace-s` to finish Triton's own non-graceful exit, then SIGKILLs it
and removes the stub's /dev/shm region (which that exit would have removed).
A PID is matched with its start time, so a reused PID is never mistaken for it.
"""

from __future__ import annotations

import argparse
import os
import signal
import time


def start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie `pid`; None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):  # exited, not reaped yet
        return None
    return int(fields[19])


def wait_gone(pid: int, started: int, timeout_s: float, poll_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while start_time(pid) == started:
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def remove_region(name: str) -> None:
    if not name or "/" in name.strip("/"):
        return
    try:
        os.unlink(os.path.join("/dev/shm", name.strip("/")))
    except OSError:
        pass


def watch(stub_pid: int, server_pid: int, region: str, grace_s: float, poll_s: float) -> int:
    stub_started = start_time(stub_pid)
    server_started = start_time(server_pid)
    if stub_started is None:
        return 0
    while True:
        if start_time(stub_pid) != stub_started:
            # The stub ended. With its server alive (a model unload) the region is the
            # server's to remove. With the server gone too, both died between two polls
            # (kill -9 of the server; the stub's own exit path does not always remove
            # the region), and nobody else will: remove it.
            if server_started is None or start_time(server_pid) != server_started:
                remove_region(region)
            return 0
        if server_started is None or start_time(server_pid) != server_started:
            break
        time.sleep(poll_s)
    # the server is gone: Triton's own exit path gets its chance first
    if not wait_gone(stub_pid, stub_started, grace_s, 0.05):
        try:
            os.kill(stub_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(stub_pid, stub_started, 5.0, 0.05)
    remove_region(region)
    return 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stub-pid", type=int, required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--shm-region", default="")
    p.add_argument("--grace-s", type=float, default=3.0)
    p.add_argument("--poll-s", type=float, default=0.2)
    a = p.parse_args(argv)
    return watch(a.stub_pid, a.server_pid, a.shm_region, a.grace_s, a.poll_s)


if __name__ == "__main__":
    raise SystemExit(main())

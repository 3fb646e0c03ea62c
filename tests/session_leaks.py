"""Suite-wide leak check: the tritonservers this test session started (directly or
through scripts), their Python-backend stubs, lifeline watchers and /dev/shm regions
must all be gone when the session ends.

Other people's servers run on the same machine, so nothing is counted by name alone:
a tritonserver is ours when this pytest process is among its ancestors; a stub is ours
when its command line names one of our servers' PIDs (it does even as an orphan); a
region is ours when one of our stubs named it. A sampler thread records them while
the suite runs (a server lives for seconds at least; the sampler looks every 0.5 s).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dynabatch.lifeline import stub_argv
from dynabatch.lifeline_watch import start_time
from dynabatch.live.leftovers import all_stubs, end_stubs, shm_regions


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(32):
        parent = _ppid(pid)
        if parent is None or parent <= 1:
            return False
        if parent == ancestor:
            return True
        pid = parent
    return False


def _tritonservers() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = stub_argv(entry.name)
            if argv and argv[0].endswith("/tritonserver") and start_time(int(entry.name)):
                found.append(int(entry.name))
    return found


def _watchers_of(stub_pids: set[int]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = stub_argv(entry.name)
        if any(a.endswith("lifeline_watch.py") for a in argv) and start_time(int(entry.name)):
            if any(a == f"--stub-pid={p}" for a in argv for p in stub_pids):
                found.append(int(entry.name))
    return found


@dataclass
class SessionLeaks:
    me: int = field(default_factory=os.getpid)
    servers: dict[int, int | None] = field(default_factory=dict)  # pid -> start time
    stubs: dict[int, str | None] = field(default_factory=dict)  # pid -> shm region
    where: dict[str, str] = field(default_factory=dict)  # region -> "model (server N)"
    regions_before: set[str] = field(default_factory=shm_regions)
    interval_s: float = 0.5
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SessionLeaks:
        self._thread = threading.Thread(target=self._run, name="leak-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:  # a process vanishing mid-scan: next round
                pass

    def sample(self) -> None:
        for pid in _tritonservers():
            if pid not in self.servers and _descends_from(pid, self.me):
                self.servers[pid] = start_time(pid)
        for stub in all_stubs():
            if stub.server_pid in self.servers and stub.pid not in self.stubs:
                self.stubs[stub.pid] = stub.shm_region
                if stub.shm_region:
                    self.where[stub.shm_region] = f"{stub.model_path} (server {stub.server_pid})"

    def leftovers(self) -> dict[str, list]:
        servers = [p for p, t in self.servers.items() if t and start_time(p) == t]
        live = {s.pid for s in all_stubs()}
        stubs = sorted(p for p in self.stubs if p in live)
        regions = sorted(
            f"{r} of {self.where.get(r, '?')}"
            for r in self.stubs.values()
            if r and r in shm_regions() - self.regions_before
        )
        watchers = _watchers_of(set(self.stubs))
        out = {"tritonserver": servers, "stub": stubs, "watcher": watchers, "shm": regions}
        return {k: v for k, v in out.items() if v}

    def finish(self, wait_s: float = 30.0) -> dict[str, list]:
        """Stop sampling; wait (bounded) for everything recorded to go; return what is
        left (and end it, so one failing run does not leak into the next)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()
        deadline = time.monotonic() + wait_s
        left = self.leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = self.leftovers()
        if left:
            for pid in left.get("tritonserver", []) + left.get("watcher", []):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            end_stubs([s for s in all_stubs() if s.pid in set(left.get("stub", []))])
            for region in left.get("shm", []):
                try:
                    (Path("/dev/shm") / region.split(" ", 1)[0]).unlink()
                except OSError:
                    pass
        return left

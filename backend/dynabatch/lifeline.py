"""Keep the Python-backend stub from outliving its tritonserver.

Why this exists (Triton 2.51, python_backend r24.10): the stub watches its parent and,
when the parent is gone, stops its message threads and destroys itself. That path
takes a mutex and the GIL. A call that waits for the server's answer -- a
`Metric.set()` (holds the GIL and that mutex while it waits), `is_cancelled()` or a
log line in flight -- never gets one from a dead server, so the stub blocks for ever,
orphaned under PID 1 with its /dev/shm region. Two defences, both here:

- `server_alive()`: a `getppid()` comparison (no round trip). The model skips metric
  writes, cancellation polls, response sends and log lines once it is False, and keeps
  the response senders it would release (a release sends a clean-up message and waits),
  so no new call starts waiting on a dead server (`guard_pb_utils`, `GuardedSender`).
- the watcher (`lifeline_watch.py`, a separate stdlib-only process, so it runs even
  when a stuck call holds the GIL): once the server is gone it gives the stub
  `grace_s` to exit by itself, then SIGKILLs it and removes its shared-memory region.
  It exits by itself when the stub does.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("dynabatch.lifeline")

WATCH_SCRIPT = Path(__file__).with_name("lifeline_watch.py")
# The stub's argv: stub, model path, shm region, default size, growth size, parent pid...
STUB_SHM_ARG = 2
STUB_PARENT_ARG = 5

_server_pid: int | None = None  # the parent this stub started under (set by Lifeline)


def server_alive() -> bool:
    """False once the tritonserver that started this process has exited (reparenting
    happens at its exit, before anyone reaps it)."""
    return _server_pid is None or os.getppid() == _server_pid


def stub_argv(pid: int | str = "self") -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def shm_region_of(argv: list[str]) -> str | None:
    """The /dev/shm region name of a triton_python_backend_stub command line."""
    if len(argv) > STUB_SHM_ARG and "triton_python_backend_stub" in argv[0]:
        name = argv[STUB_SHM_ARG]
        return name if name and "/" not in name.strip("/") else None
    return None


class Lifeline:
    """Start with the model (initialize), close with it (finalize)."""

    def __init__(self, grace_s: float = 1.0, poll_s: float = 0.2) -> None:
        global _server_pid
        self.server_pid = os.getppid()
        _server_pid = self.server_pid
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.watcher: subprocess.Popen | None = None

    def start(self) -> Lifeline:
        region = shm_region_of(stub_argv()) or ""
        cmd = [
            sys.executable,
            "-I",  # isolated: no site-packages, no user path; the watcher needs only stdlib
            str(WATCH_SCRIPT),
            f"--stub-pid={os.getpid()}",
            f"--server-pid={self.server_pid}",
            f"--shm-region={region}",
            f"--grace-s={self.grace_s:g}",
            f"--poll-s={self.poll_s:g}",
        ]
        try:
            self.watcher = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C must not end it first
            )
        except OSError as exc:  # serving goes on; only the backstop is missing
            log.error("lifeline watcher not started (%s): a killed server may orphan", exc)
        return self

    def close(self) -> None:
        """The model is unloading normally: the watcher has nothing left to guard."""
        w, self.watcher = self.watcher, None
        if w is None or w.poll() is not None:
            return
        w.terminate()
        try:
            w.wait(2.0)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait(2.0)


class _GuardedMetric:
    """A pb_utils Metric whose writes are skipped once the server is gone."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def set(self, value: float) -> None:
        if server_alive():
            self._metric.set(value)

    def increment(self, value: float) -> None:
        if server_alive():
            self._metric.increment(value)

    def observe(self, value: float) -> None:
        if server_alive():
            self._metric.observe(value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)


class _GuardedFamily:
    def __init__(self, family_type: Any, **kwargs: Any) -> None:
        self._family = family_type(**kwargs)

    def Metric(self, **kwargs: Any) -> _GuardedMetric:  # pb_utils' name
        return _GuardedMetric(self._family.Metric(**kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._family, name)


class _GuardedFamilyType:
    """Stands in for pb_utils.MetricFamily: same constants, guarded metrics."""

    def __init__(self, family_type: Any) -> None:
        self._type = family_type

    def __call__(self, **kwargs: Any) -> _GuardedFamily:
        return _GuardedFamily(self._type, **kwargs)

    def __getattr__(self, name: str) -> Any:  # GAUGE, COUNTER, HISTOGRAM
        return getattr(self._type, name)


class _GuardedPbUtils:
    def __init__(self, pb_utils: Any) -> None:
        self._pb = pb_utils
        self.MetricFamily = _GuardedFamilyType(pb_utils.MetricFamily)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pb, name)


def guard_pb_utils(pb_utils: Any) -> Any:
    """pb_utils as seen by TritonMetrics: every metric write checks `server_alive()`."""
    return _GuardedPbUtils(pb_utils)


# Response senders of a dead server, never released: releasing one that sent no final
# response queues a clean-up message that waits for the server's answer (for ever),
# and that blocks the stub's own exit path.
_held_senders: list[Any] = []


class GuardedSender:
    """A response sender that stops talking to a dead server: `send` raises (the sink
    records a failed delivery), `is_cancelled` answers True (no one is listening), and
    the sender is kept, not released (see _held_senders)."""

    def __init__(self, sender: Any) -> None:
        self._sender = sender

    def __del__(self) -> None:
        if not server_alive():
            _held_senders.append(self._sender)

    def send(self, *args: Any, **kwargs: Any) -> Any:
        if not server_alive():
            raise ConnectionError("tritonserver is gone")
        return self._sender.send(*args, **kwargs)

    def is_cancelled(self) -> bool:
        if not server_alive():
            return True
        return self._sender.is_cancelled()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sender, name)

"""Real-time driver: a daemon thread that runs iterations and sleeps each one's
simulated duration x time_scale, so the engine looks like a GPU on the wall clock.

The sleep is measured from the iteration's start, so the time spent computing the
iteration counts towards it (step wall time ~= simulated time x scale). Idle, the
thread waits on the engine's condition for a submit or cancel; it never spins.
Errors (injected faults, bugs) are recorded and raised by the next poll_events.
"""

from __future__ import annotations

import logging
import threading
import time

from ..base import EngineError

log = logging.getLogger("dynabatch.engines.simulated")


class RealtimeDriver:
    def __init__(self, engine, time_scale: float) -> None:
        self.engine = engine
        self.time_scale = time_scale
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dynabatch-sim-driver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        with self.engine._cond:
            self.engine._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        eng, stop = self.engine, self._stop
        while not stop.is_set():
            with eng._cond:
                while not stop.is_set() and not eng.has_work:
                    eng._cond.wait(0.5)
            if stop.is_set():
                return
            t0 = time.monotonic()
            try:
                out = eng._iterate()
            except EngineError as exc:
                self._record(str(exc))
                continue
            except Exception as exc:  # a bug: fail loudly through poll_events, keep serving
                log.exception("simulated executor iteration failed")
                eng._fail_all(f"simulated executor bug: {exc!r}")
                self._record(f"simulated executor bug: {exc!r}")
                continue
            if out is None:
                if eng.has_work:  # held requests but nothing runnable: do not spin
                    stop.wait(0.001)
                continue
            latency, events, stats = out
            left = t0 + latency * self.time_scale - time.monotonic()
            if left > 0:
                stop.wait(left)
            eng._publish(eng.now(), events, stats)

    def _record(self, message: str) -> None:
        with self.engine._cond:
            self.engine._error = message
            self.engine._cond.notify_all()

"""The serving loop thread and the per-request response sinks of the Triton model.

One daemon thread owns the ServingCore: it calls `core.step()`, which hands token
events to the sinks, polls clients for cancellation and refreshes metrics. Triton's
execute() thread only validates requests and calls `submit`/`stop`, which the core
accepts from any thread.

Faults (docs/RELIABILITY.md): an EngineError from the engine, or a watchdog that sees
no engine iteration for `watchdog_s` while requests are running, fails the queued and
running requests with a clear error and calls `recover(reason)` (the model rebuilds
the engine) on this thread, so the core is never touched from two threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .core import ServingCore
from .engines.base import EngineError
from .types import FinishReason, GenerationRequest, RequestState, TokenEvent

log = logging.getLogger("dynabatch.serving")


class TritonSink:
    """Sends one request's events through its Triton response sender.

    Streaming: tokens are sent as they come, at most one response per request per loop
    pass (when the loop falls behind, several engine events share one response); the
    last response carries the final flag. Non-streaming: tokens are collected and sent in one final
    response (Triton's /generate needs exactly one data response).
    `make_response(tokens)` / `make_final(tokens, state)` / `make_error(message, reason)`
    build what `sender.send` takes (the model's senders take plain row data, see
    responses.py), so this class does not import pb_utils itself.
    """

    def __init__(
        self,
        sender: Any,
        *,
        streaming: bool,
        final_flag: int,
        make_response: Callable[[list[int]], Any],
        make_error: Callable[[str, FinishReason | None], Any],
        prefix: list[int] | None = None,
        on_done: Callable[[TritonSink], None] | None = None,
        make_final: Callable[[list[int], RequestState | None], Any] | None = None,
        watch: Callable[[list[int]], list[int]] | None = None,
    ) -> None:
        self.sender = sender
        self.streaming = streaming
        self.final_flag = final_flag
        self.make_response = make_response
        self.make_error = make_error
        # the final data response, which may carry what only the end knows (token
        # counts, perf metrics); None from it = no data, the final flag alone
        self.make_final = make_final or (
            lambda tokens, state: make_response(tokens) if tokens or not streaming else None
        )
        # sees every new token first and returns those to deliver (stop words cut there)
        self.watch = watch
        self.tokens: list[int] = list(prefix or [])
        self.on_done = on_done
        self.request_id: int | None = None
        self.cancel_sent = False
        self.done = False
        self.send_failed = False
        self.pending: list[int] = []  # streaming tokens not sent yet (see flush)
        self.on_pending: Callable[[TritonSink], None] | None = None

    def is_cancelled(self) -> bool:
        try:
            return bool(self.sender.is_cancelled())
        except Exception:  # a sender Triton already closed counts as cancelled
            return True

    def on_event(self, event: TokenEvent, state: RequestState | None) -> None:
        if self.done:
            return
        token_ids = event.token_ids if self.watch is None else self.watch(list(event.token_ids))
        if not event.finished:
            if self.watch is not None and not token_ids:
                return  # nothing left to deliver after a stop word
            if self.streaming and self.on_pending is None:
                self._send(self.make_response(token_ids), 0)
            elif self.streaming:
                if not self.pending:
                    self.on_pending(self)  # the loop flushes after this pass
                self.pending.extend(token_ids)
            else:
                self.tokens.extend(token_ids)
            return
        self.done = True
        try:
            if event.error is not None:
                # never admitted (queue timeout, engine fault while queued): "not now",
                # answered like a rejection (UNAVAILABLE), not as an internal error
                reason = (
                    FinishReason.REJECTED
                    if state is None and event.finish_reason == FinishReason.ERROR
                    else event.finish_reason
                )
                self._send(self.make_error(event.error, reason), self.final_flag)
            elif event.finish_reason == FinishReason.CANCELLED and self.is_cancelled():
                self._send(None, self.final_flag)  # the client left: nothing to deliver
            elif self.streaming:
                last = self.pending + list(token_ids)
                self.pending = []
                self._send(self.make_final(last, state), self.final_flag)
            else:
                self.tokens.extend(token_ids)
                self._send(self.make_final(self.tokens, state), self.final_flag)
        finally:
            if self.on_done is not None:
                self.on_done(self)

    def flush(self) -> None:
        """Send the streaming tokens gathered during this loop pass as one response."""
        if self.pending and not self.done:
            tokens, self.pending = self.pending, []
            self._send(self.make_response(tokens), 0)

    def _send(self, response: Any, flags: int) -> None:
        try:
            if response is None:
                self.sender.send(flags=flags)
            else:
                self.sender.send(response, flags=flags)
        except Exception as exc:  # the client went away; the loop cancels the request
            if not self.send_failed:
                log.info("request %s: response not delivered (%s)", self.request_id, exc)
            self.send_failed = True


class ServingLoop:
    """Owns the thread that steps the core; `close()` always returns (bounded join)."""

    def __init__(
        self,
        core: ServingCore,
        *,
        poll_s: float = 0.01,
        cancel_check_s: float = 0.05,
        tick_s: float = 0.1,
        on_tick: Callable[[ServingCore], None] | None = None,
        idle_wait_s: float = 0.1,
        watchdog_s: float = 0.0,
        recover: Callable[[str], None] | None = None,
    ) -> None:
        self.core = core
        self.poll_s = poll_s
        self.cancel_check_s = cancel_check_s
        self.tick_s = tick_s
        self.on_tick = on_tick
        self.idle_wait_s = idle_wait_s
        self.watchdog_s = watchdog_s  # 0 = off
        self.recover = recover  # called on this thread after a fault or stall
        self.faults = 0  # engine faults + stalls seen
        self._retry: tuple[str, float, int] | None = (
            None  # (reason, when, tries) of a failed recovery
        )
        self._live: dict[int, TritonSink] = {}
        self._dirty: list[TritonSink] = []  # loop thread only: sinks with pending tokens
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dynabatch-serving", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, request: GenerationRequest, sink: TritonSink) -> None:
        sink.request_id = request.request_id
        user_done = sink.on_done

        def done(s: TritonSink) -> None:
            with self._lock:
                self._live.pop(request.request_id, None)
            if user_done is not None:
                user_done(s)

        sink.on_done = done
        sink.on_pending = self._mark_dirty
        with self._lock:
            self._live[request.request_id] = sink
        self.core.submit(request, sink)
        self._wake.set()

    def stop_request(self, request_id: int) -> None:
        """End a queued or running request (the `stop` input); its sink gets the final event."""
        self.core.cancel(request_id)
        self._wake.set()

    def close(self, message: str, join_timeout_s: float = 5.0) -> None:
        """Stop the thread, then fail whatever is still queued or running with `message`."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(join_timeout_s)
        if self._thread.is_alive():
            log.error(
                "serving loop did not stop within %.1f s; leaving it (daemon)", join_timeout_s
            )
            return  # the core belongs to that thread still: do not touch it
        try:
            self.core.fail_all(message)
        except Exception:
            log.exception("failing outstanding requests at shutdown")

    # ---- the loop thread ----------------------------------------------------------
    def _run(self) -> None:
        next_cancel = next_tick = progress = time.monotonic()
        seen_stats = None
        while not self._stop.is_set():
            try:
                if self.core.idle:
                    self._wake.wait(self.idle_wait_s)
                    self._wake.clear()
                if self._retry is not None and time.monotonic() >= self._retry[1]:
                    self._try_recover(*self._retry[::2])
                try:
                    dispatched = self.core.step(self.poll_s)
                except EngineError as exc:  # the core already failed its requests
                    self._fault(f"engine failure: {exc}", fail=False)
                    progress = time.monotonic()
                    continue
                self._flush()
                now = time.monotonic()
                # watchdog: an engine holding requests must finish iterations
                if dispatched or self.core.last_stats is not seen_stats or not self.core.running:
                    progress, seen_stats = now, self.core.last_stats
                elif self.watchdog_s and now - progress > self.watchdog_s:
                    self._fault(
                        f"engine stalled: no iteration finished for {now - progress:.1f} s "
                        f"(engine_watchdog_ms={self.watchdog_s * 1000:g}); request aborted",
                        fail=True,
                    )
                    progress = time.monotonic()
                    continue
                if now >= next_cancel:
                    next_cancel = now + self.cancel_check_s
                    self._check_cancelled()
                if now >= next_tick:
                    next_tick = now + self.tick_s
                    if self.on_tick is not None:
                        self.on_tick(self.core)
            except Exception:
                # A bug, or an engine call that failed outside poll (cancel): keep serving
                # what comes next, but do not spin on a broken engine.
                self.errors += 1
                log.exception("serving loop step failed (%d so far)", self.errors)
                self._stop.wait(min(1.0, 0.05 * self.errors))

    def _fault(self, reason: str, *, fail: bool) -> None:
        """Fail what the engine held (unless the core already did), then recover."""
        self.faults += 1
        log.error("%s", reason)
        if fail:
            self.core.fail_all(reason)
        if self._retry is None:
            self._try_recover(reason, 0)
        else:  # a rebuild already failed and waits for its retry: do not spin
            self._stop.wait(0.1)

    def _try_recover(self, reason: str, tries: int) -> None:
        """Call `recover`; when it fails, retry later with a growing delay (at most 30 s)."""
        self._retry = None
        if self.recover is None:
            return
        try:
            self.recover(reason)
        except Exception:
            log.exception("engine recovery failed (attempt %d)", tries + 1)
            self._retry = (reason, time.monotonic() + min(30.0, 0.5 * 2**tries), tries + 1)

    def _mark_dirty(self, sink: TritonSink) -> None:
        self._dirty.append(sink)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for sink in dirty:
            sink.flush()

    def _check_cancelled(self) -> None:
        with self._lock:
            sinks = list(self._live.values())
        for sink in sinks:
            if not sink.cancel_sent and not sink.done and (sink.send_failed or sink.is_cancelled()):
                sink.cancel_sent = True
                self.core.cancel(sink.request_id)

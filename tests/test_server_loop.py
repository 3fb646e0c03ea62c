"""The serving loop and response sinks without Triton: the real ServingCore, the real
simulated engine in real time, and recording senders in place of Triton's."""

import threading
import time

from dynabatch.controller import make_controller
from dynabatch.core import ServingCore
from dynabatch.engines.factory import make_engine
from dynabatch.gate import AdmissionGate
from dynabatch.serving import ServingLoop, TritonSink
from dynabatch.types import GenerationRequest, TokenEvent

FINAL = 1


class Sender:
    """Records what a TritonSink sends (same call shape as pb_utils' response sender)."""

    def __init__(self):
        self.sent = []  # (payload, flags)
        self.cancelled = False
        self.closed = threading.Event()

    def send(self, response=None, flags=0):
        self.sent.append((response, flags))
        if flags & FINAL:
            self.closed.set()

    def is_cancelled(self):
        return self.cancelled

    def tokens(self):
        return [t for payload, _ in self.sent if isinstance(payload, list) for t in payload]

    def errors(self):
        return [payload[1] for payload, _ in self.sent if isinstance(payload, tuple)]


def make_loop(policy="static", **params):
    engine = make_engine(
        "simulated", {"sim_time_scale": "0.2", **params}, max_batch_size=4, realtime=True
    )
    controller = make_controller(
        policy,
        {"static_batch_size": "1"} if policy == "static" else {},
        max_batch_size=4,
        kv_capacity=engine.kv_capacity,
    )
    core = ServingCore(engine, controller, AdmissionGate(max_queue_size=8))
    loop = ServingLoop(core, poll_s=0.01, cancel_check_s=0.01, tick_s=0.05)
    loop.start()
    return engine, loop


def submit(loop, rid, n, streaming=True):
    sender = Sender()
    sink = TritonSink(
        sender,
        streaming=streaming,
        final_flag=FINAL,
        make_response=lambda tokens: list(tokens),
        make_error=lambda message, reason: ("error", message),
    )
    loop.submit(GenerationRequest(rid, [1, 2, 3], n, streaming=streaming), sink)
    return sender


def test_streaming_and_non_streaming_token_counts():
    engine, loop = make_loop()
    try:
        a, b = submit(loop, 1, 20), submit(loop, 2, 9, streaming=False)
        assert a.closed.wait(10) and b.closed.wait(10)
    finally:
        loop.close("stopped")
        engine.shutdown()
    assert len(a.tokens()) == 20 and a.sent[-1][1] == FINAL and 2 <= len(a.sent) <= 20
    assert len(b.sent) == 1 and len(b.tokens()) == 9


def test_cancelled_sender_ends_queued_and_running_requests():
    engine, loop = make_loop()
    try:
        running, queued = submit(loop, 1, 5000), submit(loop, 2, 5000)
        deadline = time.monotonic() + 10
        while not running.tokens() and time.monotonic() < deadline:
            time.sleep(0.01)
        running.cancelled = queued.cancelled = True
        assert running.closed.wait(5) and queued.closed.wait(5)
        deadline = time.monotonic() + 5
        while not loop.core.idle and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.core.idle and engine.blocks.used_blocks == 0
        assert loop.core.counters.cancelled == 2
    finally:
        loop.close("stopped")
        engine.shutdown()
    assert len(running.tokens()) < 5000 and not queued.tokens()


def test_close_fails_what_is_left_with_the_message_and_returns_promptly():
    engine, loop = make_loop()
    running, queued = submit(loop, 1, 5000), submit(loop, 2, 5000)
    deadline = time.monotonic() + 10
    while not running.tokens() and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.close("model unloading")  # joins the loop thread
    engine.shutdown()
    assert not loop.alive
    assert running.errors() == ["model unloading"] and queued.errors() == ["model unloading"]
    assert running.sent[-1][1] == FINAL and queued.sent[-1][1] == FINAL


def test_stream_coalesces_tokens_when_the_loop_falls_behind():
    engine, loop = make_loop()
    sender = Sender()
    sink = TritonSink(
        sender,
        streaming=True,
        final_flag=FINAL,
        make_response=list,
        make_error=lambda m, r: ("error", m),
    )
    sink.on_pending = lambda s: None  # nobody flushes until we say so
    for i in range(3):
        sink.on_event(TokenEvent(7, [i]), None)
    assert sender.sent == []
    sink.flush()
    sink.on_event(TokenEvent(7, [3]), None)
    sink.on_event(TokenEvent(7, [4], finished=True), None)
    loop.close("x")
    engine.shutdown()
    assert sender.sent == [([0, 1, 2], 0), ([3, 4], FINAL)]


def test_send_failure_marks_the_request_for_cancellation():
    class Broken(Sender):
        def send(self, response=None, flags=0):
            raise RuntimeError("client gone")

    engine, loop = make_loop()
    try:
        sink = TritonSink(
            Broken(),
            streaming=True,
            final_flag=FINAL,
            make_response=list,
            make_error=lambda m, r: ("error", m),
        )
        loop.submit(GenerationRequest(5, [1], 5000, streaming=True), sink)
        deadline = time.monotonic() + 10
        while not sink.done and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.send_failed and sink.done
        assert loop.core.counters.cancelled == 1
    finally:
        loop.close("stopped")
        engine.shutdown()

"""A raw gRPC streaming client for the reliability tests (tritonclient's stream callback
drops the request id of error responses; the raw ModelStreamInfer call keeps it).

`Lane` = one ModelStreamInfer call: `send()` queues requests, a reader thread files
every response under its request id in `Outcome`s. `cancel()` cancels the call (what a
client's stop_stream(cancel_requests=True) does). Everything is bounded in time.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import np_to_triton_dtype


@dataclass
class Outcome:
    """What the client saw for one request id."""

    responses: int = 0
    finals: int = 0
    tokens: int = 0
    errors: list = field(default_factory=list)
    cancelled: bool = False  # the client cancelled the call before a final came
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def terminal(self) -> bool:
        return self.finals > 0 or self.cancelled


def make_request(model: str, rid: str, tensors: dict, parameters: dict | None = None) -> Any:
    """A ModelInferRequest from {name: numpy array} (the dtype picks the Triton type)."""
    r = service_pb2.ModelInferRequest(model_name=model, id=rid)
    for name, value in tensors.items():
        a = np.ascontiguousarray(value)
        t = r.inputs.add()
        t.name, t.datatype = name, np_to_triton_dtype(a.dtype)
        t.shape.extend(a.shape)
        r.raw_input_contents.append(a.tobytes())
    r.parameters["triton_enable_empty_final_response"].bool_param = True
    for key, value in (parameters or {}).items():
        p = r.parameters[key]
        if isinstance(value, bool):
            p.bool_param = value
        elif isinstance(value, int):
            p.int64_param = value
        elif isinstance(value, float):
            p.double_param = value
        else:
            p.string_param = str(value)
    return r


def gen_tensors(prompt, output_len: int | None, streaming: bool | None = True, **extra) -> dict:
    """The usual inputs as Triton-batched arrays; None leaves an input out."""
    t = {}
    if prompt is not None:
        t["input_ids"] = (
            np.asarray([list(prompt)], np.int32) if not isinstance(prompt, np.ndarray) else prompt
        )
    if output_len is not None:
        t["request_output_len"] = np.asarray([[output_len]], np.int32)
    if streaming is not None:
        t["streaming"] = np.asarray([[streaming]], bool)
    t.update(extra)
    return t


class Lane:
    def __init__(
        self, channel: grpc.Channel, outcomes: dict, lock: threading.Lock, on_token=None
    ) -> None:
        self._q: queue.Queue = queue.Queue()
        self.outcomes = outcomes
        self.lock = lock
        self.on_token = on_token  # called (rid, outcome) after each data response
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        self.call = stub.ModelStreamInfer(iter(self._q.get, None))
        self.ended = threading.Event()
        self.stream_error: str | None = None
        self.sent: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def send(self, request: Any) -> Outcome:
        with self.lock:
            out = self.outcomes.setdefault(request.id, Outcome())
            self.sent.append(request.id)
        self._q.put(request)
        return out

    def close(self, timeout: float = 10.0) -> bool:
        """End the request stream (half-close); True when the server closed it in time."""
        self._q.put(None)
        return self.ended.wait(timeout)

    def cancel(self) -> None:
        self.call.cancel()

    def _read(self) -> None:
        try:
            for resp in self.call:
                self._file(resp)
        except grpc.RpcError as exc:
            self.stream_error = f"{exc.code()}: {exc.details()}"
            if exc.code() == grpc.StatusCode.CANCELLED:
                with self.lock:
                    for rid in self.sent:
                        out = self.outcomes[rid]
                        if not out.terminal:
                            out.cancelled = True
                            out.done.set()
        finally:
            self.ended.set()

    def _file(self, resp: Any) -> None:
        ir = resp.infer_response
        with self.lock:
            out = self.outcomes.setdefault(ir.id, Outcome())
            out.responses += 1
            if resp.error_message:
                out.errors.append(resp.error_message)
            names = [o.name for o in ir.outputs]
            if "output_ids" in names and len(ir.raw_output_contents) > names.index("output_ids"):
                out.tokens += len(ir.raw_output_contents[names.index("output_ids")]) // 4
            final = ir.parameters.get("triton_final_response")
            if resp.error_message or (final is not None and final.bool_param):
                out.finals += 1
                out.done.set()
        if self.on_token is not None and not resp.error_message:
            self.on_token(ir.id, out)


def wait_all(outcomes, timeout: float) -> list:
    """Wait until every outcome is terminal; return the ids that are not (hung)."""
    deadline = time.monotonic() + timeout
    for out in list(outcomes.values()):
        out.done.wait(max(0.0, deadline - time.monotonic()))
    return [rid for rid, out in outcomes.items() if not out.terminal]

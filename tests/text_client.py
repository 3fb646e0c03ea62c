"""A tritonclient gRPC stream for the text models: text chunks and outputs per request."""

from __future__ import annotations

import queue
import time

import numpy as np


class TextStream:
    def __init__(self, url: str) -> None:
        import tritonclient.grpc as grpc

        self.grpc = grpc
        self.client = grpc.InferenceServerClient(url)
        self.responses: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.responses.put((result, error)))
        self.chunks: dict[str, list[str]] = {}
        self.outputs: dict[str, dict[str, int]] = {}
        self.errors: dict[str, str] = {}
        self.finished: set[str] = set()

    def send(self, model: str, request_id: str, parameters: dict | None = None, **tensors):
        from tritonclient.utils import np_to_triton_dtype

        inputs = []
        for name, value in tensors.items():
            a = np.asarray(value)
            t = self.grpc.InferInput(name, list(a.shape), np_to_triton_dtype(a.dtype))
            t.set_data_from_numpy(a)
            inputs.append(t)
        self.client.async_stream_infer(
            model,
            inputs,
            request_id=request_id,
            parameters=parameters,
            enable_empty_final_response=True,
        )

    def text(self, request_id: str) -> str:
        return "".join(self.chunks.get(request_id, []))

    def wait(self, request_ids: set[str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not request_ids <= (self.finished | set(self.errors)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not finished in {timeout} s: {request_ids - self.finished}")
            try:
                result, error = self.responses.get(timeout=0.2)
            except queue.Empty:
                continue
            if error is not None:
                # tritonclient reports a stream error without its request id: the tests
                # send one request at a time when they expect errors
                rid = next(iter(request_ids - self.finished - set(self.errors)), "?")
                self.errors[rid] = str(error)
                continue
            resp = result.get_response()
            text = result.as_numpy("text_output")
            if text is not None:
                self.chunks.setdefault(resp.id, []).extend(
                    t.decode("utf-8") for t in text.reshape(-1)
                )
            for name in ("num_input_tokens", "num_output_tokens"):
                value = result.as_numpy(name)
                if value is not None:
                    self.outputs.setdefault(resp.id, {})[name] = int(value.reshape(-1)[0])
            final = resp.parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                self.finished.add(resp.id)

    def close(self) -> None:
        try:
            self.client.stop_stream()
        finally:
            self.client.close()


def text_inputs(prompt: str, max_tokens: int, stream: bool, **extra) -> dict:
    inputs = {
        "text_input": np.array([[prompt.encode()]], dtype=object),
        "max_tokens": np.array([[max_tokens]], np.int32),
        "stream": np.array([[stream]], bool),
    }
    inputs.update(extra)
    return inputs

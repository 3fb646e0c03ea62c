"""A tritonclient gRPC stream for the text models: text chunks and outputs per request."""

from __future__ import annotations

import queue
import time

import numpy as np
from dynabatch.text.tokenizer_dir import SHIPPED_TOKENIZER_DIR
from tokenizers import Tokenizer
from triton_server import Stream

FAST = dict(sim_time_scale=0.2, max_batch_size=16, metrics_interval_ms=50)
PROMPT = "Hello! How does dynamic batching work?"
# Read with the `tokenizers` library directly: expectations do not go through
# dynabatch's own tokenizer code.
TOKENIZER = Tokenizer.from_file(str(SHIPPED_TOKENIZER_DIR / "tokenizer.json"))


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
            counts = self.outputs.setdefault(resp.id, {})
            n_in, n_out = result.as_numpy("num_input_tokens"), result.as_numpy("num_output_tokens")
            if n_in is not None:
                counts["num_input_tokens"] = int(n_in.reshape(-1)[0])
            if n_out is not None:  # per response: they add up to the total
                counts["num_output_tokens"] = counts.get("num_output_tokens", 0) + int(
                    n_out.reshape(-1)[0]
                )
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


RELOADS = iter(range(1, 10**6))


def reload_engine(server) -> None:
    """A new `tensorrt_llm` instance: Triton reloads a model only when its config
    changed, so each reload gets a metrics interval no config had before (50.00n ms)."""
    interval = f"{50 + next(RELOADS) / 1000:.3f}"
    server.load("tensorrt_llm", **{**FAST, "metrics_interval_ms": interval})


def fresh_ids(server, max_tokens: int) -> list[int]:
    """The ids the first request after a reload gets (sent as ids, end_id = eos)."""
    reload_engine(server)
    s = Stream(server.grpc_url)
    try:
        ids = TOKENIZER.encode(PROMPT).ids
        s.send("direct", ids, max_tokens, streaming=False, end_id=np.array([[0]], np.int32))
        s.wait(lambda: "direct" in s.finished)
    finally:
        s.close()
    assert not s.errors
    reload_engine(server)  # the next request is number 1 again
    return s.tokens["direct"]


def clean_prefix(ids: list[int]) -> int:
    """Tokens from the start that each decode to whole characters, so any split of them
    into streamed responses decodes to the same text."""
    n = 0
    while n < len(ids) and "\ufffd" not in TOKENIZER.decode([ids[n]]):
        n += 1
    return n

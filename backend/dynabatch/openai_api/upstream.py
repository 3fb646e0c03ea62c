"""Forward one text request to a tritonserver text model over gRPC streaming
(tritonclient.grpc.aio) and yield its text as it arrives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TextRequest:
    model: str
    prompt: str
    max_tokens: int
    stream: bool
    stop_words: list[str] = field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # priority, user, ...


@dataclass
class TextChunk:
    text: str
    num_input_tokens: int | None
    num_output_tokens: int | None
    final: bool


class UpstreamError(Exception):
    """The model answered with an error (its message is the model's)."""


class TritonText:
    def __init__(self, grpc_url: str) -> None:
        import tritonclient.grpc.aio as grpc_aio

        self.grpc_aio = grpc_aio
        self.client = grpc_aio.InferenceServerClient(grpc_url)

    async def close(self) -> None:
        await self.client.close()

    async def model_inputs(self, model: str) -> set[str]:
        config = await self.client.get_model_config(model, as_json=True)
        return {i["name"] for i in config["config"].get("input", [])}

    async def is_ready(self, model: str) -> bool:
        try:
            return bool(await self.client.is_model_ready(model))
        except Exception:
            return False

    async def generate(self, req: TextRequest, declared: set[str]) -> AsyncIterator[TextChunk]:
        """Yield the model's responses as text; raises UpstreamError on a model error.
        Inputs the model does not declare are left out (the ensemble has no
        return_num_* inputs). Leaving the iteration early cancels the request."""
        from tritonclient.utils import np_to_triton_dtype

        arrays: dict[str, np.ndarray] = {
            "text_input": np.array([[req.prompt.encode("utf-8")]], dtype=object),
            "max_tokens": np.array([[req.max_tokens]], np.int32),
            "stream": np.array([[req.stream]], bool),
            "return_num_input_tokens": np.array([[True]], bool),
            "return_num_output_tokens": np.array([[True]], bool),
        }
        if req.stop_words:
            words = [w.encode("utf-8") for w in req.stop_words]
            arrays["stop_words"] = np.array([words], dtype=object)
        for name, value, dtype in (
            ("temperature", req.temperature, np.float32),
            ("top_p", req.top_p, np.float32),
            ("presence_penalty", req.presence_penalty, np.float32),
            ("frequency_penalty", req.frequency_penalty, np.float32),
            ("seed", req.seed, np.uint64),
        ):
            if value is not None:
                arrays[name] = np.array([[value]], dtype)
        inputs = []
        for name, a in arrays.items():
            if name not in declared:
                continue
            t = self.grpc_aio.InferInput(name, list(a.shape), np_to_triton_dtype(a.dtype))
            t.set_data_from_numpy(a)
            inputs.append(t)
        done = asyncio.Event()

        async def requests():
            yield {
                "model_name": req.model,
                "inputs": inputs,
                "request_id": uuid.uuid4().hex,
                # the aio client has no enable_empty_final_response argument; this is
                # the request parameter the sync client sets for it
                "parameters": {**req.parameters, "triton_enable_empty_final_response": True},
            }
            await done.wait()  # keep the stream open until the final response

        responses = self.client.stream_infer(requests())
        try:
            async for result, error in responses:
                if error is not None:
                    raise UpstreamError(
                        str(error.message() if hasattr(error, "message") else error)
                    )
                yield _chunk(result)
                if _is_final(result):
                    break
        finally:
            done.set()
            responses.cancel()  # no-op once the call is complete; cancels it otherwise


def _chunk(result: Any) -> TextChunk:
    text = result.as_numpy("text_output")
    n_in, n_out = result.as_numpy("num_input_tokens"), result.as_numpy("num_output_tokens")
    return TextChunk(
        text="" if text is None else "".join(t.decode("utf-8") for t in text.reshape(-1)),
        num_input_tokens=None if n_in is None else int(n_in.reshape(-1)[0]),
        num_output_tokens=None if n_out is None else int(n_out.reshape(-1)[0]),
        final=_is_final(result),
    )


def _is_final(result: Any) -> bool:
    final = result.get_response().parameters.get("triton_final_response")
    return bool(final is not None and final.bool_param)

"""The FastAPI application: /v1/completions, /v1/chat/completions, /v1/models, /metrics,
/health/ready. Every error is in OpenAI's format; a streamed error is one SSE event."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from dynabatch.openai_api.errors import OpenAIError, from_triton, model_not_found
from dynabatch.openai_api.protocol import ChatCompletionRequest, CompletionRequest, _Common
from dynabatch.openai_api.upstream import TextRequest, TritonText, UpstreamError
from dynabatch.text.bls import StopStrings
from dynabatch.text.tokenizer import TextTokenizer


@dataclass
class FrontendConfig:
    triton_grpc_url: str = "127.0.0.1:8001"
    triton_metrics_url: str = "http://127.0.0.1:8002/metrics"
    models: tuple[str, ...] = ("tensorrt_llm_bls", "ensemble")  # text models offered
    tokenizer_dir: str = ""  # empty: the shipped tokenizer (chat template, usage fallback)
    default_max_tokens: int = 16


@dataclass
class _Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "length"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def create_app(config: FrontendConfig) -> FastAPI:
    tokenizer = TextTokenizer.load(config.tokenizer_dir)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if "triton" in state:
            await state["triton"].close()

    app = FastAPI(title="dynabatch OpenAI-compatible frontend", lifespan=lifespan)

    def triton() -> TritonText:
        if "triton" not in state:  # created inside the server's event loop
            state["triton"] = TritonText(config.triton_grpc_url)
        return state["triton"]

    async def declared_inputs(model: str) -> set[str]:
        cache = state.setdefault("inputs", {})
        if model not in cache:
            cache[model] = await triton().model_inputs(model)
        return cache[model]

    @app.exception_handler(OpenAIError)
    async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg', 'invalid request')}" if param else str(first)
        return JSONResponse(OpenAIError(message, param=param).body(), status_code=400)

    @app.get("/health/ready")
    async def ready() -> PlainTextResponse:
        # ready while at least one offered model can serve (/v1/models lists which)
        ok = any([await triton().is_ready(m) for m in config.models])
        return PlainTextResponse("ready" if ok else "not ready", status_code=200 if ok else 503)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        now = int(time.time())
        data = [
            {"id": m, "object": "model", "created": now, "owned_by": "dynabatch"}
            for m in config.models
            if await triton().is_ready(m)
        ]
        return {"object": "list", "data": data}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        """Triton's metrics, on the serving port (the inference gateway scrapes it)."""
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.get(config.triton_metrics_url) as r:
                body = await r.text()
                return PlainTextResponse(
                    body,
                    status_code=r.status,
                    media_type="text/plain; version=0.0.4; charset=utf-8",
                )

    async def prepare(body: _Common, prompt: str) -> tuple[TextRequest, set[str]]:
        if body.model not in config.models or not await triton().is_ready(body.model):
            raise model_not_found(body.model)
        max_tokens = body.check(config.default_max_tokens)
        params: dict[str, Any] = {}
        if body.priority is not None:
            params["request_priority"] = int(body.priority)  # gRPC reserves "priority"
        if body.user is not None:
            params["user"] = body.user
        req = TextRequest(
            model=body.model,
            prompt=prompt,
            max_tokens=max_tokens,
            stream=body.stream,
            stop_words=body.stop_words(),
            temperature=body.temperature,
            top_p=body.top_p,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
            seed=body.seed,
            parameters=params,
        )
        return req, await declared_inputs(body.model)

    async def run(req: TextRequest, declared: set[str], usage: _Usage) -> AsyncIterator[str]:
        """Text deltas of one request; fills `usage` as counts arrive. Stop strings are
        applied here too, for models (the ensemble) that cannot apply them."""
        stops = StopStrings(req.stop_words)
        text = ""
        prompt_tokens: int | None = None
        counted: int | None = None  # num_output_tokens: per response, they add up
        try:
            async for chunk in triton().generate(req, declared):
                if chunk.num_input_tokens is not None:
                    prompt_tokens = chunk.num_input_tokens
                if chunk.num_output_tokens is not None:
                    counted = (counted or 0) + chunk.num_output_tokens
                delta = stops.feed(chunk.text, final=chunk.final)
                text += delta
                if delta:
                    yield delta
                if stops.stopped:
                    break
        except UpstreamError as e:
            raise from_triton(str(e)) from None
        usage.prompt_tokens = (
            prompt_tokens if prompt_tokens is not None else len(tokenizer.encode(req.prompt))
        )
        # a model that reports no counts: the text, re-encoded, is the best estimate
        usage.completion_tokens = (
            counted if counted is not None else len(tokenizer.encode(text, False))
        )
        hit_limit = usage.completion_tokens >= req.max_tokens and not stops.stopped
        usage.finish_reason = "length" if hit_limit else "stop"

    def sse(obj: Any) -> str:
        return f"data: {json.dumps(obj)}\n\n"

    async def stream(
        http_request: Request,
        first: dict | None,
        chunk_of,
        req: TextRequest,
        declared: set[str],
        include_usage: bool,
        envelope: dict,
    ) -> AsyncIterator[str]:
        usage = _Usage()
        try:
            if first is not None:
                yield sse({**envelope, "choices": [first]})
            async for delta in run(req, declared, usage):
                if await http_request.is_disconnected():
                    # the client left: leaving `run` cancels the Triton request
                    return
                yield sse({**envelope, "choices": [chunk_of(delta, None)]})
            yield sse({**envelope, "choices": [chunk_of("", usage.finish_reason)]})
            if include_usage:
                yield sse({**envelope, "choices": [], "usage": usage.as_dict()})
        except OpenAIError as e:
            yield sse(e.body())
        yield "data: [DONE]\n\n"

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, http_request: Request) -> Any:
        req, declared = await prepare(body, body.prompt_text())
        envelope = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.model,
        }
        if body.stream:

            def chunk(delta: str, finish: str | None) -> dict:
                return {"index": 0, "text": delta, "logprobs": None, "finish_reason": finish}

            return StreamingResponse(
                stream(http_request, None, chunk, req, declared, body.include_usage(), envelope),
                media_type="text/event-stream",
            )
        usage = _Usage()
        text = "".join([d async for d in run(req, declared, usage)])
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": usage.finish_reason}
        return {**envelope, "choices": [choice], "usage": usage.as_dict()}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest, http_request: Request) -> Any:
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        try:
            prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        except Exception as e:
            raise OpenAIError(
                f"messages: the chat template failed: {e}", param="messages"
            ) from None
        req, declared = await prepare(body, prompt)
        envelope = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk" if body.stream else "chat.completion",
            "created": int(time.time()),
            "model": body.model,
        }
        if body.stream:

            def chunk(delta: str, finish: str | None) -> dict:
                content = {"content": delta} if delta or finish is None else {}
                return {"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}

            first = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
            return StreamingResponse(
                stream(http_request, first, chunk, req, declared, body.include_usage(), envelope),
                media_type="text/event-stream",
            )
        usage = _Usage()
        text = "".join([d async for d in run(req, declared, usage)])
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": usage.finish_reason,
        }
        return {**envelope, "choices": [choice], "usage": usage.as_dict()}

    return app

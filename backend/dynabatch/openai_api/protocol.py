"""Request bodies of the OpenAI completions and chat APIs (the fields we honour; other
fields are accepted and ignored, as OpenAI-compatible servers commonly do)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dynabatch.openai_api.errors import OpenAIError


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: int | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    user: str | None = None
    priority: int | None = None  # extension (as in vLLM): reaches tensorrt_llm's gate

    def stop_words(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def check(self, default_max_tokens: int) -> int:
        """Validate what pydantic cannot; returns max_tokens."""
        if self.n != 1:
            raise OpenAIError(f"n must be 1, got {self.n}", param="n")
        max_tokens = self.max_tokens if self.max_tokens is not None else default_max_tokens
        if max_tokens < 1:
            raise OpenAIError(
                f"max_tokens must be at least 1, got {max_tokens}", param="max_tokens"
            )
        return max_tokens

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_Common):
    prompt: str | list[str]
    echo: bool = False

    def prompt_text(self) -> str:
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        if len(prompts) != 1:
            raise OpenAIError("prompt must be one string", param="prompt")
        if not prompts[0]:
            raise OpenAIError("prompt is empty", param="prompt")
        if self.echo:
            raise OpenAIError("echo is not supported", param="echo")
        return prompts[0]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = [p.get("text", "") for p in self.content if p.get("type") == "text"]
        if len(parts) != len(self.content):
            raise OpenAIError("only text content parts are supported", param="messages")
        return "".join(parts)


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None

    def check(self, default_max_tokens: int) -> int:
        if self.max_tokens is None and self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        if not self.messages:
            raise OpenAIError("messages is empty", param="messages")
        return super().check(default_max_tokens)

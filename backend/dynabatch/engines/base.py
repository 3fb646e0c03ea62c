"""The Engine protocol: the one seam between the serving core and an LLM executor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..types import GenerationRequest, IterationStats, TokenEvent


class EngineError(RuntimeError):
    """An engine failed; in-flight requests get this message as their error."""


@dataclass(frozen=True)
class KvCapacity:
    total_blocks: int
    tokens_per_block: int

    @property
    def total_tokens(self) -> int:
        return self.total_blocks * self.tokens_per_block


@runtime_checkable
class Engine(Protocol):
    """An in-flight batching executor.

    - `submit` hands over a request (the engine may queue it internally);
    - `poll_events` returns token events produced since the last call, waiting up to
      `timeout` seconds for one when there is none (0 = never wait);
    - `cancel` asks the engine to drop a request; it answers with a final event
      (finish_reason CANCELLED) and frees the request's KV blocks;
    - `drain_stats` returns the iteration stats produced since the last call;
    - `shutdown` stops the engine; later calls may raise EngineError.
    """

    max_batch_size: int
    kv_capacity: KvCapacity

    def submit(self, request: GenerationRequest) -> None: ...

    def poll_events(self, timeout: float = 0.0) -> list[TokenEvent]: ...

    def cancel(self, request_id: int) -> None: ...

    def drain_stats(self) -> list[IterationStats]: ...

    def now(self) -> float: ...

    def shutdown(self) -> None: ...

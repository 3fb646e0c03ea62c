"""The Engine protocol: the one seam between the serving core and an LLM executor."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..types import GenerationRequest, IterationStats, KvCapacity, TokenEvent

__all__ = ["Engine", "EngineError", "KvCapacity"]


class EngineError(RuntimeError):
    """An engine failed; in-flight requests get this message as their error."""


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

    `kv_capacity` is the KV pool as far as the engine knows it *now*: None until it is
    known (TensorRT-LLM sizes its pool from free GPU memory when it starts, and tells
    only through iteration stats). It is never a made-up number; the stats of every
    iteration carry the same capacity (`IterationStats.kv_capacity`).
    """

    max_batch_size: int
    kv_capacity: KvCapacity | None

    def submit(self, request: GenerationRequest) -> None: ...

    def poll_events(self, timeout: float = 0.0) -> list[TokenEvent]: ...

    def cancel(self, request_id: int) -> None: ...

    def drain_stats(self) -> list[IterationStats]: ...

    def now(self) -> float: ...

    def shutdown(self) -> None: ...

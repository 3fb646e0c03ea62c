"""Typed records that cross module boundaries: requests, token events, iteration stats.

Every engine (simulated, TensorRT-LLM Executor, TensorRT-LLM LLM API) speaks these;
the serving core, the controllers, the Triton model and the benchmark only read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum


class FinishReason(str, Enum):
    LENGTH = "length"  # reached max_new_tokens
    END_ID = "end_id"  # produced end_id
    EOS = "eos"  # hidden true length reached (trace replay emulates EOS)
    STOPPED = "stopped"  # client sent the `stop` input
    CANCELLED = "cancelled"  # client cancelled
    REJECTED = "rejected"  # never admitted (queue full, queue timeout, bad input)
    ERROR = "error"  # engine failure


@dataclass(frozen=True)
class SamplingParams:
    """Sampling options; the simulated engine ignores them, TensorRT-LLM maps them."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    seed: int | None = None
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    min_tokens: int = 0
    beam_width: int = 1


@dataclass
class GenerationRequest:
    """One generation request as the engines see it."""

    request_id: int
    prompt_ids: Sequence[int]
    max_new_tokens: int
    end_id: int | None = None
    pad_id: int | None = None
    streaming: bool = False
    sampling: SamplingParams = field(default_factory=SamplingParams)
    priority: int = 0  # higher is served first, FCFS within a priority
    arrival_time: float = 0.0  # clock of whoever created it (seconds)
    true_output_len: int | None = None  # hidden EOS for simulation/trace replay

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_ids)


@dataclass
class TokenEvent:
    """New tokens for one request since its previous event; `finished` marks the last one."""

    request_id: int
    token_ids: list[int]
    finished: bool = False
    finish_reason: FinishReason | None = None
    error: str | None = None
    time: float = 0.0  # engine clock (seconds) when the tokens were produced


@dataclass(frozen=True)
class KvCapacity:
    """The paged KV pool: how many blocks, how many tokens each holds."""

    total_blocks: int
    tokens_per_block: int

    @property
    def total_tokens(self) -> int:
        return self.total_blocks * self.tokens_per_block


@dataclass
class IterationStats:
    """One engine iteration; field names follow TensorRT-LLM's IterationStats.

    `timestamp` is the engine clock (seconds) at the end of the iteration; the
    controllers take time only from here.

    The contract every engine keeps (docs/ENGINE_CONTRACT.md):
    - `max_num_blocks` / `tokens_per_block` are the KV pool as the engine knows it in
      this iteration; 0 means "not known" (`kv_capacity` is then None). Controllers take
      capacity from here, never from their construction.
    - `num_paused_requests` and `num_new_pauses` both count the requests paused
      (evicted) *in this iteration*, TensorRT-LLM's meaning of numPausedRequests.
    """

    iter: int
    timestamp: float
    iter_latency_ms: float
    num_active_requests: int
    num_queued_requests: int
    num_completed_requests: int
    max_num_active_requests: int
    # kv_cache_stats
    max_num_blocks: int
    free_num_blocks: int
    used_num_blocks: int
    tokens_per_block: int
    # inflight_batching_stats
    num_scheduled_requests: int = 0
    num_context_requests: int = 0
    num_gen_requests: int = 0
    num_paused_requests: int = 0
    num_ctx_tokens: int = 0
    # dynabatch additions (0 where an engine cannot tell)
    num_gen_tokens: int = 0
    num_new_pauses: int = 0  # requests paused (evicted) during this iteration
    total_recomputed_tokens: int = 0  # running total of tokens prefilled again after a pause

    @property
    def kv_occupancy(self) -> float:
        return self.used_num_blocks / self.max_num_blocks if self.max_num_blocks else 0.0

    @property
    def kv_capacity(self) -> KvCapacity | None:
        """The KV pool reported by this iteration; None while the engine does not know it."""
        if self.max_num_blocks > 0 and self.tokens_per_block > 0:
            return KvCapacity(self.max_num_blocks, self.tokens_per_block)
        return None


@dataclass
class RequestState:
    """What the serving core knows about an admitted request; controllers read it."""

    request_id: int
    prompt_len: int
    max_new_tokens: int
    arrival_time: float
    admitted_time: float
    generated: int = 0
    first_token_time: float | None = None
    finish_time: float | None = None
    finish_reason: FinishReason | None = None


@dataclass
class ControlInput:
    """One controller sample: an iteration's stats plus the admission queue's view.

    `running` is a live mapping owned by the serving core (not a copy): read it
    during `update`, never keep it.
    """

    stats: IterationStats
    num_waiting: int
    oldest_wait_s: float
    running: dict[int, RequestState]
    # (prompt_len, max_new_tokens) of the first waiting requests in admission order;
    # optional (empty = unknown): filled only for controllers whose class sets
    # `wants_waiting_head = True` (it costs a heap scan per iteration).
    waiting_head: Sequence[tuple[int, int]] = ()
    # latest GPU telemetry (telemetry.GpuSample) where NVML answers; None elsewhere
    gpu: object | None = None

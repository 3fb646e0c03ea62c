"""The one test builder for IterationStats: a valid iteration with every field given a
neutral value, overridden by keyword. `total`/`used` set the KV pool in blocks (the
free count follows); `gen`/`ctx` set generation and context requests (scheduled and
active follow unless given)."""

from __future__ import annotations

from typing import Any

from dynabatch.types import IterationStats


def iteration_stats(
    *,
    t: float = 0.0,
    total: int = 1000,
    used: int = 0,
    tokens_per_block: int = 16,
    gen: int = 1,
    ctx: int = 0,
    latency: float = 30.0,
    pauses: int = 0,
    **fields: Any,
) -> IterationStats:
    values: dict[str, Any] = dict(
        iter=0,
        timestamp=t,
        iter_latency_ms=latency,
        num_active_requests=gen + ctx,
        num_queued_requests=0,
        num_completed_requests=0,
        max_num_active_requests=256,
        max_num_blocks=total,
        free_num_blocks=total - used,
        used_num_blocks=used,
        tokens_per_block=tokens_per_block if total else 0,
        num_scheduled_requests=gen + ctx,
        num_context_requests=ctx,
        num_gen_requests=gen,
        num_paused_requests=pauses,
        num_gen_tokens=gen,
        num_new_pauses=pauses,
    )
    values.update(fields)
    return IterationStats(**values)

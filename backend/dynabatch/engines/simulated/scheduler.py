"""In-flight batching: which requests run this iteration, and with how many tokens.

Mirrors TensorRT-LLM's two-stage scheduler:
1. capacity: requests enter the active set (`running`, at most max_batch_size) in
   order: paused ones first (oldest first), then new ones FCFS; head-of-line, so a
   request that does not fit stops admission (no starvation of big requests).
   - guaranteed_no_evict: admit only if blocks for prompt + max_new_tokens can be
     promised next to every running request's promise; no request ever pauses.
   - max_utilization: admit if the context's blocks are free now; decode grows a
     request a block at a time and, when none is free, pauses the most recently
     admitted request (frees its blocks, requeues it to recompute prompt + output so
     far). After a pause nothing new is admitted in that iteration (no thrash).
2. micro-batch: every generation request gets its one token, then context requests
   take prefill chunks from what is left of max_num_tokens. Chunks other than a
   prompt's last are whole blocks (as TensorRT-LLM's chunk unit); without chunked
   context a prompt must fit the remaining budget in one piece (a recompute longer
   than max_num_tokens is chunked anyway, or it could never run again).
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from operator import attrgetter

from ...types import FinishReason, GenerationRequest
from .kv_cache import BlockManager

POLICIES = ("max_utilization", "guaranteed_no_evict")
_ORDER = attrgetter("order")


class Seq:
    """A request inside the engine. Plain slots: this is the per-iteration hot path."""

    __slots__ = (
        "rid",
        "req",
        "prompt_len",
        "max_new",
        "stop_len",
        "stop_reason",
        "generated",
        "ctx_len",
        "prefilled",
        "kv_len",
        "recompute_mark",
        "order",
        "emitted",
        "reserve",
        "token_base",
        "streaming",
    )

    def __init__(
        self, req: GenerationRequest, stop_len: int, stop_reason: FinishReason, token_base: int
    ) -> None:
        self.rid = req.request_id
        self.req = req
        self.prompt_len = req.prompt_len
        self.max_new = req.max_new_tokens
        self.stop_len = stop_len  # tokens this request will produce in all
        self.stop_reason = stop_reason  # why it stops there
        self.generated = 0  # output tokens produced so far
        self.ctx_len = self.prompt_len  # tokens to prefill (prompt + output after a pause)
        self.prefilled = 0  # of ctx_len, done
        self.kv_len = 0  # tokens whose K/V sit in the cache
        self.recompute_mark = 0  # tokens computed before the last pause
        self.order = -1  # admission order; -1 = never admitted
        self.emitted = 0  # output tokens already sent in events
        self.reserve = 0  # blocks promised (guaranteed_no_evict)
        self.token_base = token_base
        self.streaming = req.streaming


class Scheduler:
    def __init__(
        self,
        blocks: BlockManager,
        *,
        max_batch_size: int,
        max_num_tokens: int,
        policy: str = "max_utilization",
        chunked_context: bool = True,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(
                f"capacity policy must be one of {', '.join(POLICIES)}, got {policy!r}"
            )
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        if max_num_tokens < blocks.tokens_per_block:
            raise ValueError(
                f"max_num_tokens ({max_num_tokens}) must be >= tokens_per_block "
                f"({blocks.tokens_per_block})"
            )
        self.blocks = blocks
        self.max_batch_size = max_batch_size
        self.max_num_tokens = max_num_tokens
        self.no_evict = policy == "guaranteed_no_evict"
        self.chunked = chunked_context
        self.waiting: deque[Seq] = deque()
        self.paused: list[Seq] = []
        self.running: list[Seq] = []
        self.reserved = 0  # blocks promised to running requests (guaranteed_no_evict)
        self._next_order = 0

    def __len__(self) -> int:
        return len(self.waiting) + len(self.paused) + len(self.running)

    def add(self, seq: Seq) -> None:
        self.waiting.append(seq)

    def remove(self, seq: Seq) -> None:
        """Take a request out wherever it is (finished or cancelled) and free its blocks."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.paused:
            self.paused.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self._release(seq)

    def drop_finished(self, finished: list[Seq]) -> None:
        """Remove requests that produced their last token this iteration."""
        gone = set(map(id, finished))
        self.running = [s for s in self.running if id(s) not in gone]
        for s in finished:
            self._release(s)

    def schedule(self) -> tuple[list[tuple[Seq, int]], list[Seq], int]:
        """Plan one iteration: (context chunks, generation requests, new pauses)."""
        bm = self.blocks
        tpb = bm.tokens_per_block
        running = self.running
        gen: list[Seq] = []
        pauses = 0
        budget = self.max_num_tokens
        i = 0
        while i < len(running):
            s = running[i]
            i += 1
            if s.prefilled < s.ctx_len:
                continue
            if len(gen) >= budget:
                break
            if s.kv_len % tpb == 0 and not bm.grow_to(s.rid, s.kv_len + 1):
                paused_self = False
                while True:  # free blocks by pausing the newest request
                    victim = running[-1]
                    self._pause(victim)
                    pauses += 1
                    if victim is s:
                        paused_self = True
                        break
                    if bm.grow_to(s.rid, s.kv_len + 1):
                        break
                if paused_self:
                    break
            gen.append(s)
        if not pauses:
            self._admit()
        budget -= len(gen)
        ctx: list[tuple[Seq, int]] = []
        if budget > 0:
            for s in self.running:
                rem = s.ctx_len - s.prefilled
                if rem <= 0:
                    continue
                if rem <= budget:
                    chunk = rem
                elif not self.chunked and rem <= self.max_num_tokens:
                    continue  # waits for a budget it fits; a longer recompute is chunked anyway
                else:
                    chunk = budget - budget % tpb
                    if chunk <= 0:
                        break
                ctx.append((s, chunk))
                budget -= chunk
                if budget <= 0:
                    break
        return ctx, gen, pauses

    # ---- internals --------------------------------------------------------------
    def _admit(self) -> None:
        bm = self.blocks
        while len(self.running) < self.max_batch_size:
            if self.paused:
                s, from_paused = self.paused[0], True
            elif self.waiting:
                s, from_paused = self.waiting[0], False
            else:
                return
            need = 0
            if self.no_evict:
                need = bm.blocks_for(s.prompt_len + s.max_new)
                if self.reserved + need > bm.total_blocks:
                    return
            if not bm.grow_to(s.rid, s.ctx_len):
                return
            if from_paused:
                self.paused.pop(0)
                insort(self.running, s, key=_ORDER)
            else:
                self.waiting.popleft()
                s.order = self._next_order
                self._next_order += 1
                self.running.append(s)
            s.reserve = need
            self.reserved += need

    def _pause(self, s: Seq) -> None:
        self.running.remove(s)
        self.blocks.release(s.rid)
        self.reserved -= s.reserve
        s.reserve = 0
        s.recompute_mark = max(s.recompute_mark, s.kv_len)
        s.ctx_len = s.prompt_len + s.generated
        s.prefilled = 0
        s.kv_len = 0
        insort(self.paused, s, key=_ORDER)

    def _release(self, s: Seq) -> None:
        self.blocks.release(s.rid)
        self.reserved -= s.reserve
        s.reserve = 0

    def find(self, request_id: int) -> Seq | None:
        for group in (self.running, self.paused, self.waiting):
            for s in group:
                if s.rid == request_id:
                    return s
        return None

"""In-flight batching: which requests run this iteration, and with how many tokens.

A port of TensorRT-LLM 1.2.x's two-stage scheduler (C++ batch manager, used as is by
the PyTorch executor through `BindCapacityScheduler` in `_torch/pyexecutor/scheduler.py`).
Each rule names the file and function it comes from; docs/SIMULATOR.md lists them.

Requests live in one *active list* in arrival order (`mActiveRequests`,
`trtGptModelInflightBatching.cpp`); it holds at most max_batch_size requests, the rest
wait in the queue (`ExecutorImpl::fetchNewRequests` stops at the active limit). A paused
request keeps its place in the list: it is a context request again.

1. Capacity (`capacityScheduler.cpp`):
   - max_utilization (`MaxUtilizationScheduler::operator()`): walk the list; each
     request needs the blocks of *one step* (`KVCacheManager::getNeededBlocksOneStep`,
     `kvCacheManager.cpp`): a first context chunk needs blocks for its whole prompt,
     a context in progress none (allocated at its first chunk), a generation request
     one block when its next token crosses a block boundary. A request that does not
     fit (or is over max_batch_size, `trySchedulingRequestMaxUtilization`) makes the
     scheduler pause the *last started* request at or after it in the list (a
     generation request or a context past its first chunk), free its blocks
     (`schedulingRemoveSequence`) and try again; everything after the paused one is
     left out of this iteration. If no started request is left after it, scheduling
     stops (head of line). So an older paused request, when it comes back, evicts
     younger started ones.
   - guaranteed_no_evict (`GuaranteedNoEvictScheduler::impl`): every generation
     request runs and keeps blocks to completion reserved
     (`NoEvictScheduledBlocksManager`: prompt + max_new_tokens); other requests are
     admitted in order while their blocks to completion fit, head of line.
2. Micro-batch (`MicroBatchScheduler::operator()`, `microBatchScheduler.cpp`): in list
   order, each generation request takes one token of max_num_tokens; context requests
   share what is left first come first served (`setCtxRequestsChunkSize`,
   kFIRST_COME_FIRST_SERVED); a chunk other than a prompt's last is a whole number of
   blocks. Without chunked context a prompt runs only when it fits whole.
3. Pause (`LlmRequest::pause`, `llmRequest.h`; `TrtGptModelInflightBatching` /
   `PyExecutor._pause_requests` then free the sequence): the generated tokens join the
   prompt, context position goes back to 0, every block is freed; on resume the whole
   prompt + output so far is prefilled again. No block reuse is modelled (see
   docs/SIMULATOR.md: with reuse on, a resumed prompt finds its blocks only if nothing
   overwrote them, which under the pressure that caused the pause is rare).
"""

from __future__ import annotations

from collections import deque

from ...types import FinishReason, GenerationRequest
from .kv_cache import BlockManager

POLICIES = ("max_utilization", "guaranteed_no_evict")
# When a context request's blocks are taken: "prompt" = all of them at its first chunk
# (TensorRT-LLM 1.2: getNeededBlocksOneStep / KVCacheManager::addSequence);
# "chunk" = chunk by chunk, a what-if (not in 1.2's source) for docs/SIMULATOR.md.
CONTEXT_BLOCKS = ("prompt", "chunk")


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
        "started",
        "was_paused",
        "emitted",
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
        self.started = False  # first context chunk ran and its blocks are held
        self.was_paused = False  # paused and not resumed yet
        self.emitted = 0  # output tokens already sent in events
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
        context_blocks: str = "prompt",
    ) -> None:
        if context_blocks not in CONTEXT_BLOCKS:
            raise ValueError(
                f"context_blocks must be one of {', '.join(CONTEXT_BLOCKS)}, got {context_blocks!r}"
            )
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
        self.per_chunk = context_blocks == "chunk"
        self.queue: deque[Seq] = deque()  # not yet in the active list
        self.active: list[Seq] = []  # arrival order, at most max_batch_size
        self.num_started = 0  # holding blocks (context in progress or generating)
        self.num_paused = 0  # paused, not resumed yet

    def __len__(self) -> int:
        return len(self.queue) + len(self.active)

    # views for stats and tests (not on the hot path)
    @property
    def running(self) -> list[Seq]:
        return [s for s in self.active if s.started]

    @property
    def paused(self) -> list[Seq]:
        return [s for s in self.active if s.was_paused]

    @property
    def num_waiting(self) -> int:
        """Never started: in the queue or in the active list before their first chunk."""
        return len(self) - self.num_started - self.num_paused

    def add(self, seq: Seq) -> None:
        self.queue.append(seq)

    def remove(self, seq: Seq) -> None:
        """Take a request out wherever it is (finished or cancelled) and free its blocks."""
        if seq in self.queue:
            self.queue.remove(seq)
        elif seq in self.active:
            self.active.remove(seq)
            self._forget(seq)
        self.blocks.release(seq.rid)

    def drop_finished(self, finished: list[Seq]) -> None:
        """Remove requests that produced their last token this iteration."""
        gone = set(map(id, finished))
        self.active = [s for s in self.active if id(s) not in gone]
        for s in finished:
            self._forget(s)
            self.blocks.release(s.rid)

    def schedule(self) -> tuple[list[tuple[Seq, int]], list[Seq], int]:
        """Plan one iteration: (context chunks, generation requests, pauses in it).
        Blocks for the planned work are allocated before it returns."""
        active, queue = self.active, self.queue
        while queue and len(active) < self.max_batch_size:
            active.append(queue.popleft())
        if self.no_evict:
            fitting, pauses = self._capacity_no_evict(), 0
        else:
            fitting, pauses = self._capacity_max_utilization()
        return (*self._micro_batch(fitting), pauses)

    # ---- capacity stage -------------------------------------------------------------
    def _capacity_max_utilization(self) -> tuple[list[Seq], int]:
        bm = self.blocks
        tpb = bm.tokens_per_block
        active = self.active
        free = bm.free_blocks
        fitting: list[Seq] = []
        pauses = 0
        end = len(active)
        max_bs = self.max_batch_size
        i = 0
        while i < end:
            s = active[i]
            if s.started and s.prefilled >= s.ctx_len:  # generation: the common case first
                need = 1 if s.kv_len % tpb == 0 else 0  # next token opens a block
            elif self.per_chunk:  # what-if: blocks for the next chunk only
                upto = s.prefilled + min(s.ctx_len - s.prefilled, self.max_num_tokens)
                need = -(-upto // tpb) - bm.held(s.rid)
            elif not s.started:
                need = -(-s.ctx_len // tpb)  # first chunk: the whole prompt
            else:
                need = 0  # context in progress: allocated at its first chunk
            if need <= free and len(fitting) < max_bs:
                free -= need
                fitting.append(s)
                i += 1
                continue
            j = end - 1  # the last started request at or after this one
            while j >= i and not active[j].started:
                j -= 1
            if j < i:
                break  # nothing left to pause: head of line
            victim = active[j]
            free += bm.held(victim.rid)
            self._pause(victim)
            pauses += 1
            end = j  # the paused one and everything after it sit this iteration out
        return fitting, pauses

    def _capacity_no_evict(self) -> list[Seq]:
        bm = self.blocks
        avail = bm.free_blocks
        fitting: list[Seq] = []
        pending: list[Seq] = []
        for s in self.active:
            if s.started and s.prefilled >= s.ctx_len:
                fitting.append(s)
                avail -= bm.blocks_for(s.prompt_len + s.max_new) - bm.held(s.rid)
            else:
                pending.append(s)
        for s in pending:
            if len(fitting) >= self.max_batch_size:
                break
            need = bm.blocks_for(s.prompt_len + s.max_new) - bm.held(s.rid)
            if need > avail:
                break
            avail -= need
            fitting.append(s)
        return fitting

    # ---- micro-batch stage ------------------------------------------------------------
    def _micro_batch(self, fitting: list[Seq]) -> tuple[list[tuple[Seq, int]], list[Seq]]:
        bm = self.blocks
        tpb = bm.tokens_per_block
        budget = self.max_num_tokens
        gen: list[Seq] = []
        contexts: list[Seq] = []
        for s in fitting:
            if s.started and s.prefilled >= s.ctx_len:
                if budget < 1:
                    break
                budget -= 1
                gen.append(s)
            else:
                contexts.append(s)
        ctx: list[tuple[Seq, int]] = []
        for s in contexts:
            if budget <= 0:
                break
            rem = s.ctx_len - s.prefilled
            if rem <= budget:
                chunk = rem
            elif not self.chunked and rem <= self.max_num_tokens:
                continue  # waits for a budget it fits; a longer recompute is chunked anyway
            else:
                chunk = budget - budget % tpb
                if chunk <= 0:
                    break
            bm.grow_to(s.rid, s.prefilled + chunk if self.per_chunk else s.ctx_len)
            if not s.started:  # first chunk: blocks for the whole prompt (see CONTEXT_BLOCKS)
                s.started = True
                self.num_started += 1
                if s.was_paused:
                    s.was_paused = False
                    self.num_paused -= 1
            ctx.append((s, chunk))
            budget -= chunk
        grow = bm.grow_to
        for s in gen:
            if s.kv_len % tpb == 0:  # the next token opens a block (counted at capacity)
                grow(s.rid, s.kv_len + 1)
        return ctx, gen

    # ---- internals --------------------------------------------------------------------
    def _pause(self, s: Seq) -> None:
        self.blocks.release(s.rid)
        s.started = False
        self.num_started -= 1
        if not s.was_paused:
            s.was_paused = True
            self.num_paused += 1
        s.recompute_mark = max(s.recompute_mark, s.kv_len)
        s.ctx_len = s.prompt_len + s.generated
        s.prefilled = 0
        s.kv_len = 0

    def _forget(self, s: Seq) -> None:
        if s.started:
            s.started = False
            self.num_started -= 1
        if s.was_paused:
            s.was_paused = False
            self.num_paused -= 1

"""The stand-in's tiny in-flight batcher, shared by the Executor and LLM API faces.

It runs in its own thread like the real executor loop: each iteration admits waiting
requests (capacity policy over a paged KV pool), produces one token per running
request, answers cancellations, and records one stats record. Tokens are
deterministic: token i of a request is (sum(prompt) + 7 * i) % 997 + 3.

Test hooks (not part of TensorRT-LLM): `fail_next_iteration(msg)` makes the next
iteration fail every active request with `msg`, as a forward-pass failure does;
`stall(True)` stops iterations (a hung forward pass: no tokens, responses or stats)
until `stall(False)` or shutdown.
"""

from __future__ import annotations

import datetime
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional


def token_at(prompt: list[int], i: int) -> int:
    return (sum(prompt) + 7 * i) % 997 + 3


@dataclass
class SimRequest:
    id: int
    prompt: list[int]
    max_tokens: int
    streaming: bool
    end_id: Optional[int]
    beam_width: int = 1
    client_id: Optional[int] = None
    generated: list[int] = field(default_factory=list)
    sent: int = 0  # tokens already delivered (streaming)
    blocks: int = 0
    started: bool = False  # context phase done
    cancel: bool = False


@dataclass
class SimResponse:
    request_id: int
    client_id: Optional[int]
    tokens: list[int]
    is_final: bool
    finish_reason: str  # "NOT_FINISHED", "END_ID", "LENGTH", "CANCELLED"
    error: Optional[str] = None


class SimEngine:
    def __init__(
        self,
        *,
        total_blocks: int,
        tokens_per_block: int,
        max_batch_size: int,
        max_num_tokens: int,
        policy: str,
        max_input_len: int,
        max_seq_len: int,
        chunked: bool,
        stats_max: int,
        emit: Callable[[SimResponse], None],
        iter_time_s: float = 0.002,
    ) -> None:
        self.total_blocks = total_blocks
        self.tokens_per_block = tokens_per_block
        self.max_batch_size = max_batch_size
        self.max_num_tokens = max_num_tokens
        self.policy = policy
        self.max_input_len = max_input_len
        self.max_seq_len = max_seq_len
        self.chunked = chunked
        self.emit = emit
        self.iter_time_s = iter_time_s
        self.free_blocks = total_blocks
        self.waiting: deque[SimRequest] = deque()
        self.active: list[SimRequest] = []
        self.by_id: dict[int, SimRequest] = {}
        self.stats: deque = deque(maxlen=max(1, stats_max))
        self.iter = 0
        self.completed_total = 0
        self._next_id = 1
        self._fail_msg: Optional[str] = None
        self._stalled = False
        self._lock = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="stand-in-executor", daemon=True)
        self._thread.start()

    # ---- called from user threads ------------------------------------------------
    def enqueue(
        self,
        prompt: list[int],
        max_tokens: int,
        streaming: bool,
        end_id: Optional[int],
        beam_width: int = 1,
        client_id: Optional[int] = None,
    ) -> int:
        with self._lock:
            if self._stop:
                raise RuntimeError(
                    "[TensorRT-LLM][ERROR] Assertion failed: Shutdown called, "
                    "cannot enqueue requests"
                )
            rid = self._next_id
            self._next_id += 1
            req = SimRequest(
                rid, list(prompt), max_tokens, streaming, end_id, beam_width, client_id
            )
            if len(prompt) > self.max_input_len or len(prompt) + max_tokens > self.max_seq_len:
                # The real executor rejects such a request with an error response.
                self.emit(
                    SimResponse(
                        rid,
                        client_id,
                        [],
                        True,
                        "NOT_FINISHED",
                        (
                            f"[TensorRT-LLM][ERROR] Assertion failed: Prompt length ({len(prompt)}) "
                            f"+ max new tokens ({max_tokens}) exceeds max_seq_len ({self.max_seq_len}) "
                            f"or max_input_len ({self.max_input_len})"
                        ),
                    )
                )
                return rid
            self.by_id[rid] = req
            self.waiting.append(req)
            self._lock.notify()
            return rid

    def cancel(self, rid: int) -> None:
        with self._lock:
            req = self.by_id.get(rid)
            if req is not None:
                req.cancel = True
                self._lock.notify()

    def fail_next_iteration(self, message: str) -> None:
        with self._lock:
            self._fail_msg = message
            self._lock.notify()

    def stall(self, stalled: bool = True) -> None:
        with self._lock:
            self._stalled = stalled
            self._lock.notify()

    def take_stats(self) -> list[dict]:
        with self._lock:
            out = list(self.stats)
            self.stats.clear()
            return out

    def shutdown(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify()
        self._thread.join(timeout=5)

    @property
    def stopped(self) -> bool:
        return self._stop

    # ---- the executor thread -----------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._stop and (self._stalled or (not self.waiting and not self.active)):
                    self._lock.wait(0.05)
                if self._stop:
                    return
                self._step()
            time.sleep(self.iter_time_s)

    def _blocks_for(self, ntokens: int) -> int:
        return math.ceil(ntokens / self.tokens_per_block)

    def _step(self) -> None:
        t0 = time.perf_counter()
        completed = 0
        if self._fail_msg is not None:
            msg, self._fail_msg = self._fail_msg, None
            for req in list(self.active) + list(self.waiting):
                self._finish(req, "NOT_FINISHED", error=msg)
        for req in [r for r in list(self.active) + list(self.waiting) if r.cancel]:
            self._finish(req, "CANCELLED")
        # admission under the capacity policy and the batch limit
        paused = 0
        while self.waiting and len(self.active) < self.max_batch_size:
            req = self.waiting[0]
            need = (
                len(req.prompt) + req.max_tokens
                if self.policy == "GUARANTEED_NO_EVICT"
                else len(req.prompt) + len(req.generated) + 1
            )
            nb = self._blocks_for(need)
            if nb > self.free_blocks:
                break
            self.waiting.popleft()
            req.blocks, self.free_blocks = nb, self.free_blocks - nb
            req.started = False
            self.active.append(req)
        ctx_reqs = [r for r in self.active if not r.started]
        gen_reqs = [r for r in self.active if r.started]
        ctx_tokens = sum(len(r.prompt) + len(r.generated) for r in ctx_reqs)
        for req in list(self.active):
            if self.policy == "MAX_UTILIZATION":
                want = self._blocks_for(len(req.prompt) + len(req.generated) + 1)
                while want > req.blocks:
                    if self.free_blocks == 0:
                        victim = self.active[-1]  # pause the newest request
                        self.active.remove(victim)
                        self.free_blocks += victim.blocks
                        victim.blocks = 0
                        self.waiting.appendleft(victim)
                        paused += 1
                        if victim is req:
                            break
                        continue
                    req.blocks += 1
                    self.free_blocks -= 1
                if req not in self.active:
                    continue
            req.started = True
            tok = token_at(req.prompt, len(req.generated))
            req.generated.append(tok)
            if req.end_id is not None and tok == req.end_id:
                self._finish(req, "END_ID")
                completed += 1
            elif len(req.generated) >= req.max_tokens:
                self._finish(req, "LENGTH")
                completed += 1
            elif req.streaming:
                self.emit(
                    SimResponse(
                        req.id, req.client_id, req.generated[req.sent :], False, "NOT_FINISHED"
                    )
                )
                req.sent = len(req.generated)
        self.iter += 1
        self.completed_total += completed
        used = self.total_blocks - self.free_blocks
        latency_ms = (time.perf_counter() - t0) * 1000.0 + self.iter_time_s * 1000.0
        self.stats.append(
            {
                "timestamp": datetime.datetime.now().strftime("%m-%d-%Y %H:%M:%S.%f"),
                "iter": self.iter,
                "iterLatencyMS": latency_ms,
                "newActiveRequestsQueueLatencyMS": 0.0,
                "numNewActiveRequests": len(ctx_reqs),
                "numActiveRequests": len(self.active),
                "numQueuedRequests": len(self.waiting),
                "numCompletedRequests": completed,
                "maxNumActiveRequests": self.max_batch_size,
                "gpuMemUsage": 1 << 30,
                "cpuMemUsage": 1 << 20,
                "pinnedMemUsage": 0,
                "kvCacheStats": {
                    "maxNumBlocks": self.total_blocks,
                    "freeNumBlocks": self.free_blocks,
                    "usedNumBlocks": used,
                    "tokensPerBlock": self.tokens_per_block,
                    "allocTotalBlocks": used,
                    "allocNewBlocks": 0,
                    "reusedBlocks": 0,
                    "missedBlocks": 0,
                    "cacheHitRate": 0.0,
                },
                "staticBatchingStats": None,
                "inflightBatchingStats": {
                    "numScheduledRequests": len(ctx_reqs) + len(gen_reqs),
                    "numContextRequests": len(ctx_reqs),
                    "numGenRequests": len(gen_reqs),
                    "numPausedRequests": paused,
                    "numCtxTokens": ctx_tokens,
                    "microBatchId": 0,
                    "avgNumDecodedTokensPerIter": 1.0,
                },
            }
        )

    def _finish(self, req: SimRequest, reason: str, error: Optional[str] = None) -> None:
        if req in self.active:
            self.active.remove(req)
        if req in self.waiting:
            self.waiting.remove(req)
        self.free_blocks += req.blocks
        req.blocks = 0
        self.by_id.pop(req.id, None)
        tokens = req.generated[req.sent :] if req.streaming else list(req.generated)
        self.emit(SimResponse(req.id, req.client_id, [] if error else tokens, True, reason, error))

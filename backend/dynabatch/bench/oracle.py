"""The clairvoyant reference policy (benchmarks only; it needs the future).

It knows every request's true output length and the admission order (the gate is
FCFS at equal priority), so it can predict the KV cache's future: every decoding
request grows by one token per iteration and frees all its blocks when it finishes.
It admits the longest run of next requests for which the predicted *peak* occupancy
stays within the cache, i.e. exactly what fits without a pause (max_utilization
then never pauses), and marks the memory limit every policy is measured against
(reports give each policy's throughput as a fraction of it).

The prediction is conservative where the engine's timing is uncertain: a request
that has not produced its first token yet may wait for prefill, so it is assumed to
grow from the start yet release its blocks only after a prefill delay bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..controller.base import LimitDecision
from ..engines.base import KvCapacity
from ..types import ControlInput, GenerationRequest, RequestState


def output_len(request: GenerationRequest) -> int:
    true_len = (
        request.true_output_len if request.true_output_len is not None else request.max_new_tokens
    )
    return max(1, min(true_len, request.max_new_tokens))


class OracleController:
    name = "oracle"

    def __init__(
        self,
        admission_order: Sequence[GenerationRequest],
        kv_capacity: KvCapacity,
        max_batch_size: int,
        max_num_tokens: int = 8192,
    ) -> None:
        """`admission_order`: the requests the gate will admit, in the order it will
        admit them (rejected ones left out); `max_num_tokens` bounds prefill speed."""
        self._order = [r.request_id for r in admission_order]
        self._prompt = {r.request_id: r.prompt_len for r in admission_order}
        self._out = {r.request_id: output_len(r) for r in admission_order}
        self._tpb = kv_capacity.tokens_per_block
        self._total = kv_capacity.total_blocks
        self._max_batch = max_batch_size
        self._step_tokens = max(1, max_num_tokens // 2)  # prefill share of a step, pessimistic
        self._next = 0  # index in _order of the first request not yet admitted
        self._seen: set[int] = set()  # admitted (running or finished)
        self._limit = self._fit({})
        self._decision = LimitDecision(self._limit, {"memory": self._limit}, "memory")

    # ---- the prediction ---------------------------------------------------------
    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self._tpb)

    def _peak(self, start: np.ndarray, rem: np.ndarray, hold: np.ndarray) -> int:
        """Highest predicted block count. Each request's blocks only grow until it
        releases them, so the peak falls on one of the release steps."""
        checks = np.unique(hold)[:, None]  # (m, 1)
        tokens = start[None, :] + np.minimum(checks, rem[None, :])
        blocks = -(-tokens // self._tpb) * (hold[None, :] >= checks)
        return int(blocks.sum(axis=1).max())

    def _fit(self, running: dict[int, RequestState]) -> int:
        """len(running) + how many of the next requests fit without a pause."""
        start, rem, hold = [], [], []
        pending_prompt = 0  # prompt tokens still to prefill, in admission order
        for rid, st in running.items():
            gen = st.generated
            out = self._out.get(rid, st.max_new_tokens)
            start.append(st.prompt_len + gen)
            rem.append(max(out - gen, 0))
            if gen == 0:
                pending_prompt += st.prompt_len
                hold.append(out + 1 + pending_prompt // self._step_tokens)
            else:
                hold.append(out - gen)
        final_sum = sum(self._blocks(a + r) for a, r in zip(start, rem))
        k, n_run = 0, len(running)
        while n_run + k < self._max_batch and self._next + k < len(self._order):
            rid = self._order[self._next + k]
            prompt, out = self._prompt[rid], self._out[rid]
            delay = 1 + (pending_prompt + prompt) // self._step_tokens
            final = self._blocks(prompt + out)
            if final_sum + final > self._total:  # else it surely fits: peak <= sum of finals
                s = (
                    np.array(start + [prompt]),
                    np.array(rem + [out]),
                    np.array(hold + [out + delay]),
                )
                if self._peak(*s) > self._total:
                    break
            final_sum += final
            start.append(prompt), rem.append(out), hold.append(out + delay)
            pending_prompt += prompt
            k += 1
        # Never 0: an empty engine must take the head request (the gate only holds
        # requests that fit the cache on their own).
        return max(n_run + k, 1)

    # ---- Controller protocol -----------------------------------------------------
    def update(self, sample: ControlInput) -> int:
        running = sample.running
        self._seen.update(running)
        while self._next < len(self._order) and self._order[self._next] in self._seen:
            self._next += 1
        self._limit = self._fit(running)
        self._decision = LimitDecision(self._limit, {"memory": self._limit}, "memory")
        return self._limit

    def on_request_finish(self, state: RequestState) -> None:
        self._seen.add(state.request_id)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def decision(self) -> LimitDecision:
        return self._decision

"""`sglang_ratio`: SGLang's admission rule (new_token_ratio), as an in-flight limit.

SGLang's scheduler (its defaults, checked in the SGLang source: SGLANG_INIT_NEW_TOKEN_RATIO
0.7, SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR 0.14, SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS 600,
SGLANG_RETRACT_DECODE_STEPS 20, SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION 4096) admits a waiting
request when the KV cache can hold what is reserved for the running requests plus the
newcomer: each running request reserves min(remaining max tokens, 4096) x ratio, the
newcomer needs its prompt + min(max new tokens, 4096) x ratio. The ratio starts at 0.7,
decays linearly to 0.7 x 0.14 over 600 decode steps, and when the engine has to
retract (pause) requests it is reset to (tokens decoded so far + 20 per request) /
(sum of max new tokens) of the running batch.

The gate admits FCFS while in-flight < limit, so the rule becomes
limit = running + how many queue-head requests fit, in order. The queue head comes
from ControlInput.waiting_head; when the serving core does not fill it, the newcomer
is assumed to look like the mean running request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..types import ControlInput
from .base import LimitDecision
from .common import SingleBound, clamp
from .kv_capacity import CapacityTracker, unknown_decision
from .registry import Bounds, params_of

RETRACT_DECODE_STEPS = 20


class SglangRatioController(SingleBound):
    name = "sglang_ratio"
    bound = "memory"
    wants_waiting_head = True  # sizes admission by the actual next requests

    def __init__(
        self,
        *,
        init_ratio: float,
        min_ratio_factor: float,
        decay_steps: int,
        clip_max_new_tokens: int,
        lower: int,
        upper: int,
    ) -> None:
        self.capacity = CapacityTracker()  # the pool as the engine last reported it
        self.init_ratio = init_ratio
        self.min_ratio = init_ratio * min_ratio_factor
        self.decay = (init_ratio - self.min_ratio) / decay_steps
        self.clip = clip_max_new_tokens
        self.lower, self.upper = lower, upper
        self.ratio = init_ratio
        self.b = lower  # nothing known before the first sample
        self.fits = 0  # queue-head requests that fit at the last update

    def update(self, sample: ControlInput) -> int:
        stats, running, clip = sample.stats, sample.running, self.clip
        cap = self.capacity.refresh(stats)
        if cap is None:  # nothing is known to fit before the engine reports its pool
            return self.b
        if stats.num_new_pauses > 0 and running:
            decoded = sum(s.generated for s in running.values())
            max_new = sum(s.max_new_tokens for s in running.values())
            self.ratio = min(1.0, (decoded + RETRACT_DECODE_STEPS * len(running)) / max(max_new, 1))
        elif stats.num_gen_requests > 0:
            self.ratio = max(self.min_ratio, self.ratio - self.decay)
        ratio = self.ratio
        free = stats.free_num_blocks * cap.tokens_per_block
        reserved = 0.0
        sum_prompt = sum_new = 0
        for s in running.values():
            reserved += min(s.max_new_tokens - s.generated, clip) * ratio
            if s.first_token_time is None:  # admitted, prompt not in the cache yet
                reserved += s.prompt_len
            sum_prompt += s.prompt_len
            sum_new += s.max_new_tokens
        avail = free - reserved
        fits = 0
        if sample.waiting_head:
            for prompt_len, max_new in sample.waiting_head:
                need = prompt_len + min(max_new, clip) * ratio
                if need > avail:
                    break
                avail -= need
                fits += 1
        elif running and avail > 0:
            n = len(running)
            need = sum_prompt / n + min(sum_new / n, clip) * ratio
            fits = int(avail // need) if need > 0 else self.upper
        self.fits = fits
        self.b = clamp(len(running) + fits, self.lower, self.upper)
        return self.b

    @property
    def decision(self) -> LimitDecision:
        if self.capacity.current is None:
            return unknown_decision(self.b)
        return super().decision


@params_of(
    "sglang_init_ratio",
    "sglang_min_ratio_factor",
    "sglang_decay_steps",
    "sglang_clip_max_new_tokens",
)
def build(p: Mapping[str, Any], b: Bounds) -> SglangRatioController:
    return SglangRatioController(
        init_ratio=p["sglang_init_ratio"],
        min_ratio_factor=p["sglang_min_ratio_factor"],
        decay_steps=p["sglang_decay_steps"],
        clip_max_new_tokens=p["sglang_clip_max_new_tokens"],
        lower=b.lower,
        upper=b.upper,
    )

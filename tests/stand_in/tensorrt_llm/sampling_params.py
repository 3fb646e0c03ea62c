"""Stand-in for `tensorrt_llm.sampling_params.SamplingParams` (a dataclass: unknown
keywords raise TypeError). Checked against tensorrt_llm/sampling_params.py: end_id,
pad_id (defaults to end_id), max_tokens=32, n=1, best_of=None, use_beam_search=False,
top_k, top_p, seed, temperature, min_tokens, repetition_penalty, presence_penalty,
frequency_penalty, detokenize=True, ...; `_validate` rejects best_of < n and greedy
decoding with best_of > 1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Union


@dataclass
class SamplingParams:
    end_id: Optional[int] = None
    pad_id: Optional[int] = None
    max_tokens: int = 32
    stop: Optional[Union[str, List[str]]] = None
    stop_token_ids: Optional[List[int]] = None
    n: int = 1
    best_of: Optional[int] = None
    use_beam_search: bool = False
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    seed: Optional[int] = None
    temperature: Optional[float] = None
    min_tokens: Optional[int] = None
    repetition_penalty: Optional[float] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    length_penalty: Optional[float] = None
    exclude_input_from_output: bool = True
    return_perf_metrics: bool = False
    ignore_eos: bool = False
    detokenize: bool = True
    add_special_tokens: bool = True

    def __post_init__(self) -> None:
        if self.pad_id is None:
            self.pad_id = self.end_id
        self.best_of = self.best_of or self.n
        if self.best_of < self.n:
            raise ValueError(f"best_of ({self.best_of}) cannot be less than n ({self.n})")
        greedy = not self.use_beam_search and self.top_k in (None, 1) and self.top_p in (None, 0.0)
        if self.best_of > 1 and greedy:
            raise ValueError(
                "Greedy decoding in the LLM API does not allow multiple returns. "
                f"Please set to best_of=1, got best_of={self.best_of}."
            )
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool):
            raise TypeError(f"max_tokens must be int, got {type(self.max_tokens).__name__}")

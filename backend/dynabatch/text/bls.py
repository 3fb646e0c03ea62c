"""The `tensorrt_llm_bls` request logic, independent of Triton: which inputs map to which
`tensorrt_llm` inputs, and stop strings over streamed text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dynabatch.text.processing import TextRequestError, encode_prompt, text_of
from dynabatch.text.tokenizer import TextTokenizer

# BLS input -> `tensorrt_llm` input (the names TensorRT-LLM's BLS uses on both sides,
# limited to what our `tensorrt_llm` declares).
FORWARDED_INPUTS = {
    "end_id": "end_id",
    "pad_id": "pad_id",
    "top_k": "runtime_top_k",
    "top_p": "runtime_top_p",
    "temperature": "temperature",
    "repetition_penalty": "repetition_penalty",
    "min_tokens": "min_length",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "beam_width": "beam_width",
}


@dataclass
class BlsRequest:
    prompt_ids: list[int]
    max_tokens: int
    stream: bool
    stop_words: list[str]
    return_num_input_tokens: bool
    return_num_output_tokens: bool
    forwarded: dict[str, np.ndarray] = field(default_factory=dict)

    def engine_inputs(self, end_id: int, pad_id: int) -> dict[str, np.ndarray]:
        """The `tensorrt_llm` request: one sequence, Triton batch dimension 1."""
        inputs = {
            "input_ids": np.array([self.prompt_ids], np.int32),
            "input_lengths": np.array([[len(self.prompt_ids)]], np.int32),
            "request_output_len": np.array([[self.max_tokens]], np.int32),
            # Stop strings are matched on streamed text, so that a stop ends generation
            # (and frees its KV blocks) early, also for a non-streaming client.
            "streaming": np.array([[self.stream or bool(self.stop_words)]], bool),
            "end_id": np.array([[end_id]], np.int32),
            "pad_id": np.array([[pad_id]], np.int32),
        }
        inputs.update(self.forwarded)
        return inputs


def parse_bls_request(
    tokenizer: TextTokenizer, arrays: Mapping[str, np.ndarray], add_special_tokens: bool = True
) -> BlsRequest:
    if "text_input" not in arrays or "max_tokens" not in arrays:
        missing = [n for n in ("text_input", "max_tokens") if n not in arrays]
        raise TextRequestError(f"missing required input(s): {', '.join(missing)}")
    text = arrays["text_input"].reshape(-1)
    if text.size != 1:
        raise TextRequestError(f"text_input must hold one prompt per request, got {text.size}")
    prompt = encode_prompt(
        tokenizer, text_of(text[0]), int(arrays["max_tokens"].reshape(-1)[0]), add_special_tokens
    )
    returns = arrays.get("num_return_sequences")
    if returns is not None and int(returns.reshape(-1)[0]) != 1:
        raise TextRequestError(f"num_return_sequences must be 1, got {int(returns.reshape(-1)[0])}")
    stop = arrays.get("stop_words")
    words = (
        []
        if stop is None
        else [w for w in (text_of(v, "stop_words") for v in stop.reshape(-1)) if w]
    )
    forwarded = {
        FORWARDED_INPUTS[name]: value.reshape(1, -1)[:, :1]
        for name, value in arrays.items()
        if name in FORWARDED_INPUTS
    }
    return BlsRequest(
        prompt_ids=prompt.input_ids,
        max_tokens=prompt.request_output_len,
        stream=_flag(arrays, "stream"),
        stop_words=words,
        return_num_input_tokens=_flag(arrays, "return_num_input_tokens"),
        return_num_output_tokens=_flag(arrays, "return_num_output_tokens"),
        forwarded=forwarded,
    )


def _flag(arrays: Mapping[str, np.ndarray], name: str) -> bool:
    value = arrays.get(name)
    return bool(value.reshape(-1)[0]) if value is not None and value.size else False


class StopStrings:
    """Cuts streamed text at the first stop string. While streaming, the tail that could
    still grow into a stop string is held back, so no stop string is ever sent."""

    def __init__(self, words: list[str]) -> None:
        self.words = [w for w in words if w]
        self.text = ""  # everything received
        self.sent = 0  # characters of `text` already released
        self.stopped = False

    def feed(self, delta: str, final: bool = False) -> str:
        """Text that may be sent now; sets `stopped` once a stop string appears."""
        self.text += delta
        cut = min((i for i in (self.text.find(w) for w in self.words) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            end = cut
        elif final or not self.words:
            end = len(self.text)
        else:
            end = len(self.text) - self._partial_tail()
        out = self.text[self.sent : max(end, self.sent)]
        self.sent = max(end, self.sent)
        return out

    def _partial_tail(self) -> int:
        """Length of the longest text suffix that is a proper prefix of a stop string."""
        best = 0
        for w in self.words:
            for n in range(min(len(w) - 1, len(self.text)), best, -1):
                if self.text.endswith(w[:n]):
                    best = n
                    break
        return best

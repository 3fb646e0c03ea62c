"""Triton request tensors <-> GenerationRequest, with validation and clear errors.

Triton checks declared dtypes and rejects undeclared inputs, but lets through a
missing non-optional input and an empty `input_ids`, and knows nothing about ranges:
every check here raises RequestError with a message that names the input.
Tensors arrive with Triton's batch dimension first ([1, n] / [1, 1]); plain [n] / [1]
tensors are accepted too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .types import GenerationRequest, SamplingParams

# Inputs of tensorrtllm_backend's tensorrt_llm model that this model reads.
INPUT_NAMES = (
    "input_ids",
    "input_lengths",
    "request_output_len",
    "end_id",
    "pad_id",
    "streaming",
    "stop",
    "temperature",
    "runtime_top_k",
    "runtime_top_p",
    "random_seed",
    "seed",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "min_length",
    "beam_width",
)


class RequestError(ValueError):
    """A request this model cannot serve; the message goes back to that client only."""


@dataclass(frozen=True)
class Limits:
    max_new_tokens_limit: int
    max_prompt_len: int = 0  # 0 = bounded only by the KV cache (checked by ServingCore)
    vocab_size: int = 0  # 0 = no range check on token ids


def _rows(name: str, array: np.ndarray) -> np.ndarray:
    """The request's one row: [n] or [1, n]; a batch of several sequences is refused."""
    a = np.asarray(array)
    if a.ndim == 2:
        if a.shape[0] != 1:
            raise RequestError(
                f"{name}: batch size {a.shape[0]}; this model takes one "
                f"sequence per request (send one request per sequence)"
            )
        a = a[0]
    elif a.ndim != 1:
        raise RequestError(f"{name}: expected shape [n] or [1, n], got {list(a.shape)}")
    return a


def _scalar(tensors: Mapping[str, np.ndarray], name: str) -> Any | None:
    """The value of an optional one-element input, or None when it was not sent."""
    if name not in tensors:
        return None
    a = np.asarray(tensors[name])
    if a.size != 1:
        if a.ndim >= 1 and a.shape[0] > 1:
            raise RequestError(
                f"{name}: batch size {a.shape[0]}; this model takes one sequence per request"
            )
        raise RequestError(f"{name}: expected one value, got shape {list(a.shape)}")
    value = a.reshape(-1)[0]
    return value.item() if hasattr(value, "item") else value


def _int(
    tensors, name: str, lo: int | None = None, hi: int | None = None, what: str = ""
) -> int | None:
    v = _scalar(tensors, name)
    if v is None:
        return None
    if isinstance(v, float) and not v.is_integer():
        raise RequestError(f"{name} must be an integer, got {v}")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise RequestError(f"{name} must be {what or _range(lo, hi)}, got {v}")
    return v


def _float(
    tensors, name: str, lo: float | None = None, hi: float | None = None, what: str = ""
) -> float | None:
    v = _scalar(tensors, name)
    if v is None:
        return None
    v = float(v)
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise RequestError(f"{name} must be {what or _range(lo, hi)}, got {v}")
    return v


def _range(lo, hi) -> str:
    if hi is None:
        return f">= {lo}"
    if lo is None:
        return f"<= {hi}"
    return f"in [{lo}, {hi}]"


def is_stop_request(tensors: Mapping[str, np.ndarray]) -> bool:
    """TensorRT-LLM convention: `stop`=true asks to end the request with the same id."""
    return bool(_scalar(tensors, "stop") or False)


# Every request parameter the model reads (docs/RELIABILITY.md, "Request parameters"),
# in one place: a name not listed is refused with an error naming it. Over HTTP
# /generate an unknown JSON key arrives as a request parameter, so without this a typo
# (`request_output_length`, `priorty`) would be accepted and silently change nothing.
REQUEST_PARAMETERS = frozenset(
    {
        "priority",  # generate endpoints
        "request_priority",  # gRPC (tritonclient keeps `priority` for Triton's own field)
        "tenant",  # the tenant a request is admitted and accounted under
        "user",  # the OpenAI API's end-user id (dynabatch.openai_api passes it on)
        "true_output_len",  # simulated engine: the output length a trace recorded
        "inject_fault",  # test-only fault injection (enable_fault_injection)
        "fault_after_iterations",
        "fault_stall_s",
    }
)


def request_parameters(raw: str | None) -> dict[str, Any]:
    """Per-request parameters (request.parameters() is a JSON object string); a name
    outside REQUEST_PARAMETERS is refused."""
    if not raw:
        return {}
    try:
        params = json.loads(raw)
    except ValueError:
        raise RequestError(f"request parameters are not valid JSON: {raw[:80]!r}") from None
    if not isinstance(params, dict):
        raise RequestError("request parameters must be a JSON object")
    unknown = sorted(k for k in params if k not in REQUEST_PARAMETERS)
    if unknown:
        raise RequestError(
            f"unknown request parameter{'s' if len(unknown) > 1 else ''} "
            + ", ".join(repr(k) for k in unknown)
            + "; known: "
            + ", ".join(sorted(REQUEST_PARAMETERS))
            + " (over HTTP /generate every JSON key that is not an input is a parameter)"
        )
    return params


def _int_param(params: Mapping[str, Any], name: str, lo: int | None = None) -> int | None:
    if name not in params:
        return None
    v = params[name]
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise RequestError(f"request parameter '{name}' must be an integer, got {v!r}")
    try:
        f = float(v)
        if not f.is_integer():
            raise ValueError
    except ValueError:
        raise RequestError(f"request parameter '{name}' must be an integer, got {v!r}") from None
    if lo is not None and f < lo:
        raise RequestError(f"request parameter '{name}' must be >= {lo}, got {v!r}")
    return int(f)


def to_generation_request(
    tensors: Mapping[str, np.ndarray],
    params: Mapping[str, Any],
    *,
    request_id: int,
    limits: Limits,
    arrival_time: float = 0.0,
) -> GenerationRequest:
    """Validate one Triton request and build the engine's request (raises RequestError)."""
    if "input_ids" not in tensors:
        raise RequestError("missing required input 'input_ids' (INT32 token ids)")
    if "request_output_len" not in tensors:
        raise RequestError("missing required input 'request_output_len' (INT32, >= 1)")
    ids = _rows("input_ids", tensors["input_ids"])
    if ids.dtype.kind not in "iu":
        raise RequestError(f"input_ids must be integer token ids, got dtype {ids.dtype}")
    length = _int(tensors, "input_lengths", lo=0)
    if length is not None:
        if length > len(ids):
            raise RequestError(
                f"input_lengths ({length}) is larger than input_ids ({len(ids)} tokens)"
            )
        ids = ids[:length]  # the rest is padding
    if len(ids) == 0:
        raise RequestError("input_ids is empty: the prompt needs at least one token")
    if limits.max_prompt_len and len(ids) > limits.max_prompt_len:
        raise RequestError(
            f"prompt of {len(ids)} tokens exceeds max_prompt_len ({limits.max_prompt_len})"
        )
    if limits.vocab_size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= limits.vocab_size:
            bad = lo if lo < 0 else hi
            raise RequestError(
                f"input_ids holds token id {bad}, outside the vocabulary [0, {limits.vocab_size})"
            )
    max_new = _int(
        tensors,
        "request_output_len",
        lo=1,
        hi=limits.max_new_tokens_limit,
        what=f"in [1, {limits.max_new_tokens_limit}] (max_new_tokens_limit)",
    )
    beam = _int(
        tensors, "beam_width", lo=1, hi=1, what="1 (beam search is not supported by this model)"
    )
    seed = _int(tensors, "random_seed", lo=0)
    if seed is None:
        seed = _int(tensors, "seed", lo=0)
    sampling = SamplingParams(
        temperature=_opt(_float(tensors, "temperature", lo=0.0), 1.0),
        top_k=_opt(_int(tensors, "runtime_top_k", lo=0), 0),
        top_p=_opt(_float(tensors, "runtime_top_p", lo=0.0, hi=1.0), 0.0),
        seed=seed,
        repetition_penalty=_opt(_float(tensors, "repetition_penalty", what="> 0"), 1.0),
        presence_penalty=_opt(_float(tensors, "presence_penalty"), 0.0),
        frequency_penalty=_opt(_float(tensors, "frequency_penalty"), 0.0),
        min_tokens=_opt(_int(tensors, "min_length", lo=0), 0),
        beam_width=_opt(beam, 1),
    )
    if sampling.repetition_penalty <= 0:
        raise RequestError(f"repetition_penalty must be > 0, got {sampling.repetition_penalty}")
    end_id = _int(tensors, "end_id")
    pad_id = _int(tensors, "pad_id")
    for name, value in (("end_id", end_id), ("pad_id", pad_id)):
        if limits.vocab_size and value is not None and value >= limits.vocab_size:
            raise RequestError(f"{name} {value} is outside the vocabulary [0, {limits.vocab_size})")
    streaming = _scalar(tensors, "streaming")
    return GenerationRequest(
        request_id=request_id,
        prompt_ids=[int(t) for t in ids],
        max_new_tokens=max_new,
        end_id=end_id if end_id is not None and end_id >= 0 else None,
        pad_id=pad_id if pad_id is not None and pad_id >= 0 else None,
        streaming=bool(streaming) if streaming is not None else False,
        sampling=sampling,
        priority=_priority(params),
        arrival_time=arrival_time,
        true_output_len=_int_param(params, "true_output_len", lo=1),
    )


def _priority(params: Mapping[str, Any]) -> int:
    """`priority` (generate endpoints) or `request_priority` (tritonclient reserves the
    name `priority` for Triton's own field, which the Python backend cannot read)."""
    value = _int_param(params, "request_priority")
    if value is None:
        value = _int_param(params, "priority")
    return 0 if value is None else value


def _opt(value, default):
    return default if value is None else value


def output_arrays(tokens: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """output_ids [1, beam=1, n] and sequence_length [1, 1], Triton's batch dim first."""
    ids = np.asarray(tokens, dtype=np.int32).reshape(1, 1, -1)
    return ids, np.array([[ids.shape[-1]]], dtype=np.int32)

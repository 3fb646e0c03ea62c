"""Triton request tensors <-> GenerationRequest, with validation and clear errors.

Triton checks declared dtypes and rejects undeclared inputs, but lets through a
missing non-optional input and an empty `input_ids`, and knows nothing about ranges:
every check here raises RequestError with a message that names the input.
Tensors arrive with Triton's batch dimension first ([B, n] / [B, 1] / [B]); plain [n] /
[1] tensors are accepted too. A request of B rows is B generation requests, as in
TensorRT-LLM: `split_rows` cuts it into one tensor map per row, each row is then checked
on its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import trtllm_io
from .stop_words import parse_word_list
from .types import GenerationRequest, SamplingParams

# Every input of TensorRT-LLM's tensorrt_llm model (and two older names): trtllm_io.
INPUT_NAMES = trtllm_io.INPUT_NAMES


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
                f"{name}: batch size {a.shape[0]}; a row takes one value (rows are "
                "split before this check)"
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
    if lo is None and hi is None:
        return "a finite number"
    if hi is None:
        return f">= {lo}"
    if lo is None:
        return f"<= {hi}"
    return f"in [{lo}, {hi}]"


def is_stop_request(tensors: Mapping[str, np.ndarray]) -> bool:
    """TensorRT-LLM convention: `stop`=true asks to end the request with the same id."""
    stop = tensors.get("stop")
    return stop is not None and bool(np.asarray(stop).any())


def batch_size(tensors: Mapping[str, np.ndarray]) -> int:
    """Rows in one Triton request: input_ids' first dimension ([B, n]); [n] is one row."""
    ids = tensors.get("input_ids")
    if ids is None:
        return 1
    a = np.asarray(ids)
    return int(a.shape[0]) if a.ndim == 2 else 1


def split_rows(tensors: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One tensor map per row of a batched request, each row keeping a batch dim of 1.
    Every input must have one entry per row (TensorRT-LLM refuses the same)."""
    n = batch_size(tensors)
    if n <= 1:
        return [dict(tensors)]
    rows: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
    for name, value in tensors.items():
        a = np.asarray(value)
        if a.ndim == 0 or a.shape[0] != n:
            got = a.shape[0] if a.ndim else "a scalar"
            raise RequestError(
                f"{name}: batch size {got}, but input_ids has {n} rows "
                "(every input needs one entry per row)"
            )
        for i in range(n):
            rows[i][name] = a[i : i + 1]
    return rows


@dataclass(frozen=True)
class ResponseOptions:
    """What one row's responses carry besides output_ids and sequence_length."""

    exclude_input: bool  # non-streaming output_ids without the prompt
    return_num_input_tokens: bool = False
    return_num_output_tokens: bool = False
    return_perf_metrics: bool = False
    stop_words: tuple[tuple[int, ...], ...] = ()  # stop_words_list, parsed


def response_options(tensors: Mapping[str, np.ndarray], exclude_default: bool) -> ResponseOptions:
    """The row's output options; `exclude_input_in_output` overrides the model parameter."""

    def flag(name: str, default: bool = False) -> bool:
        value = _scalar(tensors, name)
        if value is None:
            return default
        if not isinstance(value, (bool, np.bool_)):
            raise RequestError(f"{name} must be a BOOL, got {value!r}")
        return bool(value)

    stop_words: tuple[tuple[int, ...], ...] = ()
    if "stop_words_list" in tensors and np.asarray(tensors["stop_words_list"]).size:
        try:
            stop_words = parse_word_list("stop_words_list", tensors["stop_words_list"])
        except ValueError as exc:
            raise RequestError(str(exc)) from None
    return ResponseOptions(
        stop_words=stop_words,
        exclude_input=flag("exclude_input_in_output", exclude_default),
        return_num_input_tokens=flag("return_num_input_tokens"),
        return_num_output_tokens=flag("return_num_output_tokens"),
        return_perf_metrics=flag("return_perf_metrics"),
    )


def _is_empty_word_list(a: np.ndarray) -> bool:
    """TensorRT-LLM's word lists are [2, n]: flat token ids, then end offsets padded with
    -1; its preprocessing model sends [[0], [-1]] for "no words"."""
    if a.size == 0:
        return True
    return a.ndim >= 2 and a.shape[-2] == 2 and bool((a[..., 1, :] < 0).all())


def check_trtllm_inputs(tensors: Mapping[str, np.ndarray]) -> None:
    """Inputs we cannot honour: accepted only absent, empty or at TensorRT-LLM's default;
    beam-search knobs (no effect at beam width 1) are type-checked."""
    for name in tensors:
        spec = trtllm_io.INPUT_BY_NAME.get(name)
        if spec is None or spec.status == trtllm_io.SUPPORTED:
            continue
        a = np.asarray(tensors[name])
        if spec.status == trtllm_io.NO_EFFECT:
            if spec.dtype == "TYPE_BOOL":
                _scalar(tensors, name)
            else:
                _float(tensors, name, lo=0.0 if name == "beam_search_diversity_rate" else None)
            continue
        if a.size == 0:
            continue
        if name == "bad_words_list" and _is_empty_word_list(a):
            continue
        if name == "embedding_bias" and a.dtype.kind == "f" and not a.any():
            continue  # an all-zero bias changes nothing
        if spec.default is None:
            raise RequestError(
                f"{name} is not supported by this model ({spec.why}); leave it out or send it empty"
            )
        value = _scalar(tensors, name)
        if isinstance(spec.default, bool):
            same = bool(value) == spec.default
        else:
            same = math.isclose(float(value), float(spec.default), rel_tol=1e-6)
        if not same:
            raise RequestError(
                f"{name} is not supported by this model ({spec.why}): only "
                f"{str(spec.default).lower()} (TensorRT-LLM's default) is accepted, got {value}"
            )


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
        # TensorRT-LLM's inflight_batcher_llm_client.py sends {"Streaming": flag} with
        # its stop/cancel requests; accepted and ignored (the `streaming` input decides)
        "Streaming",
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
    check_trtllm_inputs(tensors)
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
    lo, hi = int(ids.min()), int(ids.max())
    if limits.vocab_size:
        if lo < 0 or hi >= limits.vocab_size:
            bad = lo if lo < 0 else hi
            raise RequestError(
                f"input_ids holds token id {bad}, outside the vocabulary [0, {limits.vocab_size})"
            )
    elif lo < 0:  # no vocabulary known: only the lower bound holds for every model
        raise RequestError(f"input_ids holds token id {lo}: token ids are >= 0")
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
    _int(
        tensors,
        "num_return_sequences",
        lo=1,
        hi=1,
        what="1 (this model returns one sequence per request)",
    )
    min_tokens = _int(tensors, "min_tokens", lo=0)
    if min_tokens is None:
        min_tokens = _int(tensors, "min_length", lo=0)  # the older name
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
        min_tokens=_opt(min_tokens, 0),
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
        tenant=tenant_param(params),
    )


def _priority(params: Mapping[str, Any]) -> int:
    """`priority` (generate endpoints) or `request_priority` (tritonclient reserves the
    name `priority` for Triton's own field, which the Python backend cannot read)."""
    value = _int_param(params, "request_priority")
    if value is None:
        value = _int_param(params, "priority")
    return 0 if value is None else value


MAX_TENANT_LEN = 64


def tenant_param(params: Mapping[str, Any]) -> str:
    """The request parameter `tenant` (who sent the request; "" = the default tenant), or
    else `user` (what the OpenAI frontend forwards from the API's `user` field):
    1-64 printable characters, not blank (an OpenAI `user` such as "John Doe" is a fine
    tenant; Prometheus label values may hold spaces)."""
    name = "tenant" if "tenant" in params else "user"
    if name not in params:
        return ""
    v = params[name]
    if (
        not isinstance(v, str)
        or not 1 <= len(v) <= MAX_TENANT_LEN
        or not v.isprintable()
        or not v.strip()
    ):
        raise RequestError(
            f"request parameter '{name}' (the tenant) must be 1-{MAX_TENANT_LEN} printable "
            f"characters, not blank, got {v!r:.80}"
        )
    return v


def _opt(value, default):
    return default if value is None else value


def output_arrays(tokens: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """output_ids [1, beam=1, n] and sequence_length [1, 1], Triton's batch dim first."""
    ids = np.asarray(tokens, dtype=np.int32).reshape(1, 1, -1)
    return ids, np.array([[ids.shape[-1]]], dtype=np.int32)

"""The bad-input corpus: requests the model must refuse, each with an error that names
the problem (a regex over the error message).

gRPC cases are (name, tensors, request parameters, pattern); HTTP cases are (name,
raw body, pattern, statuses) for POST /v2/models/<m>/generate (Triton 2.51 itself
answers a body it cannot parse as JSON tensors with HTTP 500; everything the model refuses is 400). The server runs CONFIG: a
4096-token KV cache, max_prompt_len 3000, max_new_tokens_limit 2048, and the
profile's 32,000-token vocabulary.
"""

from __future__ import annotations

import numpy as np

from .client import gen_tensors

CONFIG = dict(
    sim_profile="llama-2-13b-a100-40gb",
    sim_time_scale=0.5,
    batch_policy="adaptive",
    max_batch_size=8,
    max_tokens_in_paged_kv_cache=4096,
    max_prompt_len=3000,
    max_new_tokens_limit=2048,
    max_queue_size=64,
    queue_timeout_ms=0,
    vocab_size=32000,  # a known vocabulary: the simulated engine has none of its own
)
VOCAB = 32000
INT32_MAX = 2**31 - 1

P = [1, 2, 3]  # a good prompt


def _f(x):
    return np.asarray([[x]], np.float32)


def _i(x):
    return np.asarray([[x]], np.int32)


GRPC_CASES = [
    # missing / extra tensors
    ("missing input_ids", gen_tensors(None, 4), None, r"missing required input 'input_ids'"),
    (
        "missing request_output_len",
        gen_tensors(P, None),
        None,
        r"missing required input 'request_output_len'",
    ),
    ("only streaming", {"streaming": np.asarray([[True]])}, None, r"input_ids"),
    ("extra undeclared tensor", gen_tensors(P, 4, foo=_i(1)), None, r"'foo'"),
    # wrong dtypes (Triton checks declared types; the message names input and type)
    (
        "input_ids INT64",
        gen_tensors(np.asarray([P], np.int64), 4),
        None,
        r"input_ids.*INT64|INT64.*input_ids",
    ),
    (
        "input_ids FP32",
        gen_tensors(np.asarray([P], np.float32), 4),
        None,
        r"input_ids.*FP32|FP32.*input_ids",
    ),
    (
        "request_output_len FP32",
        gen_tensors(P, None, request_output_len=_f(4.0)),
        None,
        r"request_output_len.*FP32|FP32.*request_output_len",
    ),
    (
        "streaming INT32",
        gen_tensors(P, 4, streaming=None) | {"streaming": _i(1)},
        None,
        r"streaming.*INT32|INT32.*streaming",
    ),
    (
        "temperature INT32",
        gen_tensors(P, 4, temperature=_i(1)),
        None,
        r"temperature.*INT32|INT32.*temperature",
    ),
    (
        "input_ids as BYTES",
        gen_tensors(np.asarray([[b"1", b"2"]], np.object_), 4),
        None,
        r"input_ids.*BYTES|BYTES.*input_ids",
    ),
    # wrong shapes
    (
        "input_ids 3-D",
        gen_tensors(np.asarray([[P]], np.int32), 4),
        None,
        r"input_ids.*shape|shape.*input_ids",
    ),
    (
        "request_output_len two values",
        gen_tensors(P, None, request_output_len=np.asarray([[4, 5]], np.int32)),
        None,
        r"request_output_len.*shape|shape.*request_output_len",
    ),
    (
        "batch whose inputs disagree",  # two rows are two requests; four outputs for two
        gen_tensors(
            np.asarray([[1, 2], [3, 4]], np.int32),
            None,
            None,
            request_output_len=np.asarray([[4], [4], [4], [4]], np.int32),
        ),
        None,
        r"batch size",
    ),
    # prompt size
    ("empty prompt", gen_tensors([], 4), None, r"input_ids is empty"),
    ("input_lengths 0", gen_tensors(P, 4, input_lengths=_i(0)), None, r"input_ids is empty"),
    (
        "input_lengths beyond input_ids",
        gen_tensors(P, 4, input_lengths=_i(9)),
        None,
        r"input_lengths \(9\) is larger than input_ids \(3 tokens\)",
    ),
    (
        "prompt over max_prompt_len",
        gen_tensors([5] * 3001, 4),
        None,
        r"prompt of 3001 tokens exceeds max_prompt_len \(3000\)",
    ),
    (
        "huge prompt (200k tokens)",
        gen_tensors(np.ones((1, 200_000), np.int32), 4),
        None,
        r"prompt of 200000 tokens exceeds max_prompt_len",
    ),
    (
        "prompt + output beyond the KV cache",
        gen_tensors([5] * 2900, 1500),
        None,
        r"exceeds the KV cache \(4096 tokens\)",
    ),
    # request_output_len range
    ("request_output_len 0", gen_tensors(P, 0), None, r"request_output_len must be in \[1, 2048\]"),
    (
        "request_output_len -1",
        gen_tensors(P, -1),
        None,
        r"request_output_len must be in \[1, 2048\].*-1",
    ),
    (
        "request_output_len 2^31-1",
        gen_tensors(P, INT32_MAX),
        None,
        r"request_output_len must be in \[1, 2048\].*2147483647",
    ),
    ("request_output_len over the limit", gen_tensors(P, 2049), None, r"max_new_tokens_limit"),
    # token ids
    (
        "out-of-vocabulary id",
        gen_tensors([1, VOCAB], 4),
        None,
        rf"token id {VOCAB}, outside the vocabulary",
    ),
    ("negative token id", gen_tensors([1, -7], 4), None, r"token id -7, outside the vocabulary"),
    ("INT32 max token id", gen_tensors([INT32_MAX], 4), None, r"outside the vocabulary"),
    (
        "end_id outside the vocabulary",
        gen_tensors(P, 4, end_id=_i(VOCAB)),
        None,
        rf"end_id {VOCAB} is outside the vocabulary",
    ),
    (
        "end_id two values",
        gen_tensors(P, 4, end_id=np.asarray([[1, 2]], np.int32)),
        None,
        r"end_id.*shape|shape.*end_id",
    ),
    ("end_id FP32", gen_tensors(P, 4, end_id=_f(2.0)), None, r"end_id.*FP32|FP32.*end_id"),
    (
        "pad_id outside the vocabulary",
        gen_tensors(P, 4, pad_id=_i(INT32_MAX)),
        None,
        r"pad_id 2147483647 is outside the vocabulary",
    ),
    # sampling values
    (
        "negative temperature",
        gen_tensors(P, 4, temperature=_f(-0.5)),
        None,
        r"temperature must be >= 0",
    ),
    (
        "NaN temperature",
        gen_tensors(P, 4, temperature=_f(float("nan"))),
        None,
        r"temperature must be .*nan",
    ),
    (
        "infinite temperature",
        gen_tensors(P, 4, temperature=_f(float("inf"))),
        None,
        r"temperature must be .*inf",
    ),
    (
        "top_p above 1",
        gen_tensors(P, 4, runtime_top_p=_f(1.5)),
        None,
        r"runtime_top_p must be in \[0.0, 1.0\]",
    ),
    (
        "negative top_p",
        gen_tensors(P, 4, runtime_top_p=_f(-0.1)),
        None,
        r"runtime_top_p must be in",
    ),
    (
        "negative top_k",
        gen_tensors(P, 4, runtime_top_k=_i(-1)),
        None,
        r"runtime_top_k must be >= 0",
    ),
    (
        "zero repetition_penalty",
        gen_tensors(P, 4, repetition_penalty=_f(0.0)),
        None,
        r"repetition_penalty must be > 0",
    ),
    ("negative min_length", gen_tensors(P, 4, min_length=_i(-3)), None, r"min_length must be >= 0"),
    ("beam search", gen_tensors(P, 4, beam_width=_i(4)), None, r"beam search is not supported"),
    # TensorRT-LLM's inputs we cannot honour (docs/COMPATIBILITY.md), refused by name
    ("negative min_tokens", gen_tensors(P, 4, min_tokens=_i(-3)), None, r"min_tokens must be >= 0"),
    (
        "two return sequences",
        gen_tensors(P, 4, num_return_sequences=_i(2)),
        None,
        r"num_return_sequences must be 1",
    ),
    (
        "log-probs asked for",
        gen_tensors(P, 4, return_log_probs=np.asarray([[True]])),
        None,
        r"return_log_probs is not supported",
    ),
    (
        "a LoRA task",
        gen_tensors(P, 4, lora_task_id=np.asarray([[5]], np.uint64)),
        None,
        r"lora_task_id is not supported",
    ),
    (
        "stop words with an offset past the ids",
        gen_tensors(P, 4, stop_words_list=np.asarray([[[5, 6], [3, -1]]], np.int32)),
        None,
        r"stop_words_list: offsets must increase",
    ),
    (
        "bad words",
        gen_tensors(P, 4, bad_words_list=np.asarray([[[5, 6], [2, -1]]], np.int32)),
        None,
        r"bad_words_list is not supported",
    ),
    (
        "infinite len_penalty",
        gen_tensors(P, 4, len_penalty=_f(np.inf)),
        None,
        r"len_penalty must be a finite number",
    ),
    (
        "exclude_input_in_output as INT32",
        gen_tensors(P, 4, exclude_input_in_output=_i(1)),
        None,
        r"exclude_input_in_output",
    ),
    # request parameters
    (
        "non-integer priority",
        gen_tensors(P, 4),
        {"request_priority": "high"},
        r"'request_priority' must be an integer",
    ),
    (
        "true_output_len 0",
        gen_tensors(P, 4),
        {"true_output_len": 0},
        r"'true_output_len' must be >= 1",
    ),
    (
        "fault injection while disabled",
        gen_tensors(P, 4),
        {"inject_fault": "raise"},
        r"fault injection is disabled",
    ),
    (
        "unknown request parameter",
        gen_tensors(P, 4),
        {"request_priorty": 1},
        r"unknown request parameter 'request_priorty'",
    ),
    # stop without a target
    (
        "stop for an unknown id",
        gen_tensors(P, 4, stop=np.asarray([[True]])),
        None,
        r"stop: no request with id .* is queued or running",
    ),
]

HTTP_CASES = [
    ("body is not JSON", b'{"input_ids": [1, 2', r"failed to parse the request JSON", (500,)),
    (
        "input_ids are strings",
        b'{"input_ids": ["a", "b"], "request_output_len": 4}',
        r"Unable to parse 'data'",
        (500,),
    ),  # Triton's own JSON conversion
    (
        "generate without request_output_len",
        b'{"input_ids": [1, 2]}',
        r"request_output_len",
        (400,),
    ),
    (
        "generate with request_output_len 0",
        b'{"input_ids": [1, 2], "request_output_len": 0}',
        r"request_output_len must be in",
        (400,),
    ),
    (
        "generate with an empty prompt",
        b'{"input_ids": [], "request_output_len": 4}',
        r"input_ids",
        (400,),
    ),
    (
        "generate with a misspelt key",
        b'{"input_ids": [1], "request_output_len": 4, "runtime_top_pp": 0.5}',
        r"unknown request parameter 'runtime_top_pp'",
        (400,),
    ),
    (
        "generate with top_p 7",
        b'{"input_ids": [1], "request_output_len": 4, "runtime_top_p": 7.0}',
        r"runtime_top_p",
        (400,),
    ),
]

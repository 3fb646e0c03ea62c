"""Request validation: every bad input gets a RequestError that names the problem."""

import numpy as np
import pytest
from dynabatch.request_mapping import (
    Limits,
    RequestError,
    is_stop_request,
    output_arrays,
    request_parameters,
    to_generation_request,
)

LIMITS = Limits(max_new_tokens_limit=64, max_prompt_len=100, vocab_size=1000)


def i32(*values, batch=True):
    a = np.array(values, dtype=np.int32)
    return a.reshape(1, -1) if batch else a


def build(params=None, limits=LIMITS, **tensors):
    base = {"input_ids": i32(5, 6, 7), "request_output_len": i32(4)}
    base.update(tensors)
    base = {k: v for k, v in base.items() if v is not None}
    return to_generation_request(base, params or {}, request_id=9, limits=limits)


def test_valid_request_maps_all_fields():
    req = build(
        {"priority": 3, "true_output_len": 2},
        end_id=i32(2),
        pad_id=i32(0),
        streaming=np.array([[True]]),
        temperature=np.array([[0.5]], np.float32),
        runtime_top_k=i32(40),
        runtime_top_p=np.array([[0.9]], np.float32),
        random_seed=np.array([[123]], np.uint64),
        min_length=i32(1),
        repetition_penalty=np.array([[1.1]], np.float32),
    )
    assert req.request_id == 9 and list(req.prompt_ids) == [5, 6, 7]
    assert req.max_new_tokens == 4 and req.end_id == 2 and req.pad_id == 0
    assert req.streaming is True and req.priority == 3 and req.true_output_len == 2
    s = req.sampling
    assert s.temperature == pytest.approx(0.5) and s.top_k == 40
    assert s.top_p == pytest.approx(0.9) and s.seed == 123 and s.min_tokens == 1
    assert s.repetition_penalty == pytest.approx(1.1) and s.beam_width == 1


def test_defaults_and_unbatched_shapes():
    req = to_generation_request(
        {"input_ids": i32(1, 2, batch=False), "request_output_len": i32(3, batch=False)},
        {},
        request_id=1,
        limits=LIMITS,
    )
    assert list(req.prompt_ids) == [1, 2] and req.streaming is False
    assert req.end_id is None and req.priority == 0 and req.sampling.temperature == 1.0


def test_input_lengths_trims_padding():
    assert list(build(input_ids=i32(1, 2, 0, 0), input_lengths=i32(2)).prompt_ids) == [1, 2]
    with pytest.raises(RequestError, match="input_lengths"):
        build(input_lengths=i32(9))


@pytest.mark.parametrize(
    "tensors,params,pattern",
    [
        ({"input_ids": None}, {}, "missing required input 'input_ids'"),
        ({"request_output_len": None}, {}, "missing required input 'request_output_len'"),
        ({"input_ids": np.zeros((1, 0), np.int32)}, {}, "input_ids is empty"),
        ({"request_output_len": i32(0)}, {}, r"request_output_len must be in \[1, 64\]"),
        ({"request_output_len": i32(-3)}, {}, "request_output_len"),
        ({"request_output_len": i32(65)}, {}, "max_new_tokens_limit"),
        ({"input_ids": i32(*range(101))}, {}, "max_prompt_len"),
        ({"input_ids": i32(1, 1000)}, {}, r"token id 1000, outside the vocabulary \[0, 1000\)"),
        ({"input_ids": i32(-1, 2)}, {}, "token id -1"),
        ({"end_id": i32(1000)}, {}, r"end_id 1000 is outside the vocabulary \[0, 1000\)"),
        ({"pad_id": i32(5000)}, {}, "pad_id 5000 is outside the vocabulary"),
        ({"input_ids": np.ones((2, 3), np.int32)}, {}, "batch size 2"),
        ({"request_output_len": np.array([[3], [3]], np.int32)}, {}, "batch size 2"),
        ({"input_ids": np.ones((1, 1, 3), np.int32)}, {}, "shape"),
        ({"temperature": np.array([[-0.1]], np.float32)}, {}, "temperature must be >= 0"),
        ({"temperature": np.array([[np.nan]], np.float32)}, {}, "temperature"),
        (
            {"runtime_top_p": np.array([[1.5]], np.float32)},
            {},
            r"runtime_top_p must be in \[0.0, 1.0\]",
        ),
        ({"runtime_top_k": i32(-1)}, {}, "runtime_top_k"),
        (
            {"repetition_penalty": np.array([[0.0]], np.float32)},
            {},
            "repetition_penalty must be > 0",
        ),
        ({"beam_width": i32(2)}, {}, "beam search is not supported"),
        ({"min_length": i32(-1)}, {}, "min_length"),
        ({}, {"priority": "high"}, "'priority' must be an integer"),
        ({}, {"true_output_len": 0}, "'true_output_len' must be >= 1"),
    ],
)
def test_bad_inputs_name_the_problem(tensors, params, pattern):
    with pytest.raises(RequestError, match=pattern):
        build(params, **tensors)


def test_priority_from_either_parameter_name():
    assert build({"request_priority": 4}).priority == 4
    assert build({"priority": -2}).priority == -2
    with pytest.raises(RequestError, match="'request_priority' must be an integer"):
        build({"request_priority": 1.5})


def test_no_vocab_or_prompt_limit_when_zero():
    req = build(limits=Limits(max_new_tokens_limit=8), input_ids=i32(*range(500), 99999))
    assert req.prompt_len == 501
    # without a vocabulary a negative id is still no token of any model
    with pytest.raises(RequestError, match=r"input_ids holds token id -7: token ids are >= 0"):
        build(limits=Limits(max_new_tokens_limit=8), input_ids=i32(1, -7, 3))


def test_stop_and_parameters():
    assert is_stop_request({"stop": np.array([[True]])})
    assert not is_stop_request({"stop": np.array([[False]])}) and not is_stop_request({})
    assert request_parameters('{"priority": 2}') == {"priority": 2}
    assert request_parameters("") == {}
    with pytest.raises(RequestError, match="JSON"):
        request_parameters("{nope")


def test_output_arrays_have_batch_and_beam_dims():
    ids, n = output_arrays([4, 5, 6])
    assert ids.shape == (1, 1, 3) and ids.dtype == np.int32 and ids.tolist() == [[[4, 5, 6]]]
    assert n.tolist() == [[3]] and n.dtype == np.int32
    ids, n = output_arrays([])
    assert ids.shape == (1, 1, 0) and n.tolist() == [[0]]

"""The TensorRT-LLM I/O table and what is built from it: config.pbtxt's input/output
blocks, the non-decoupled and demo configurations kept in step, docs/COMPATIBILITY.md;
batch rows, the checks of inputs we cannot honour, response groups (no server)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from dynabatch import trtllm_io
from dynabatch.live.models import DYNAMIC_MODEL, ROOT, STATIC_MODEL, UNARY_MODEL
from dynabatch.request_mapping import (
    RequestError,
    ResponseOptions,
    check_trtllm_inputs,
    response_options,
    split_rows,
)
from dynabatch.responses import ResponseGroup, RowError, RowOutput, merge_rows
from dynabatch.types import FinishReason

FINAL = 1


def _io_part(path) -> str:
    text = (path / "config.pbtxt").read_text()
    return text[text.index("input [\n") : text.index("# The engine runs")]


@pytest.mark.parametrize("model", [DYNAMIC_MODEL, UNARY_MODEL, STATIC_MODEL])
def test_config_declares_every_trtllm_input_and_output(model):
    assert _io_part(model) == trtllm_io.render_io()


def _without_comments(path) -> list[str]:
    lines = (path / "config.pbtxt").read_text().splitlines()
    return [line for line in lines if not line.startswith("#")]


def test_unary_and_demo_configurations_differ_only_where_they_must():
    base = _without_comments(DYNAMIC_MODEL)
    unary = _without_comments(UNARY_MODEL)
    diff = [(a, b) for a, b in zip(base, unary) if a != b]
    assert len(base) == len(unary) and diff == [("  decoupled: true", "  decoupled: false")]
    static = _without_comments(STATIC_MODEL)
    diff = [(a, b) for a, b in zip(base, static) if a != b]
    assert len(base) == len(static) and diff == [
        ('name: "tensorrt_llm"', 'name: "tensorrt_llm_static"'),
        ('  value: { string_value: "adaptive" }', '  value: { string_value: "static" }'),
    ]


def test_default_repository_holds_one_routable_llm():
    # text models (tokenizer, ensemble) may sit beside it; one LLM exports nv_trt_llm_*
    llms = [
        p.parent.parent.name
        for p in (ROOT / "model_repository").glob("*/1/model.py")
        if "dynabatch.triton_model" in p.read_text()
    ]
    assert llms == ["tensorrt_llm"]


def test_compatibility_doc_matches_the_table():
    text = (ROOT / "docs" / "COMPATIBILITY.md").read_text()
    generated = re.search(
        r"<!-- generated: python -m dynabatch.trtllm_io doc -->\n(.*)<!-- end generated -->",
        text,
        re.S,
    )
    assert generated, "docs/COMPATIBILITY.md lost its generated part"
    assert generated.group(1) == trtllm_io.render_doc_tables(), (
        "stale: regenerate with python -m dynabatch.trtllm_io doc"
    )


def test_inputs_match_tensorrt_llm_names_and_types():
    by_name = trtllm_io.INPUT_BY_NAME
    assert len([s for s in trtllm_io.INPUTS if not s.ours_only]) == 62
    for name, dtype in [
        ("min_tokens", "TYPE_INT32"),
        ("seed", "TYPE_UINT64"),
        ("exclude_input_in_output", "TYPE_BOOL"),
        ("return_num_input_tokens", "TYPE_BOOL"),
        ("num_return_sequences", "TYPE_INT32"),
        ("stop_words_list", "TYPE_INT32"),
    ]:
        assert by_name[name].dtype == dtype


def test_split_rows_gives_each_row_its_own_batch_of_one():
    rows = split_rows(
        {
            "input_ids": np.array([[1, 2, 0], [3, 4, 5]], np.int32),
            "input_lengths": np.array([2, 3], np.int32),  # reshape: [ ] -> [B]
            "request_output_len": np.array([[4], [5]], np.int32),
        }
    )
    assert [r["input_ids"].tolist() for r in rows] == [[[1, 2, 0]], [[3, 4, 5]]]
    assert [r["input_lengths"].tolist() for r in rows] == [[2], [3]]
    assert [r["request_output_len"].tolist() for r in rows] == [[[4]], [[5]]]
    with pytest.raises(RequestError, match="request_output_len: batch size 1, but input_ids"):
        split_rows(
            {
                "input_ids": np.ones((2, 3), np.int32),
                "request_output_len": np.array([[4]], np.int32),
            }
        )


def test_exclude_input_in_output_input_overrides_the_parameter():
    assert response_options({}, exclude_default=False).exclude_input is False
    assert response_options({}, exclude_default=True).exclude_input is True
    on = {"exclude_input_in_output": np.array([True])}
    off = {"exclude_input_in_output": np.array([[False]])}
    assert response_options(on, exclude_default=False).exclude_input is True
    assert response_options(off, exclude_default=True).exclude_input is False


@pytest.mark.parametrize(
    "tensors, pattern",
    [
        ({"draft_input_ids": np.array([[1, 2]], np.int32)}, "draft_input_ids is not supported"),
        ({"runtime_top_p_min": np.array([0.5], np.float32)}, "runtime_top_p_min.*only 1e-06"),
        ({"return_context_logits": np.array([True])}, "return_context_logits.*only false"),
        ({"bad_words_list": np.array([[[7], [1]]], np.int32)}, "bad_words_list is not supported"),
        ({"embedding_bias": np.array([[0.0, 0.5]], np.float32)}, "embedding_bias is not"),
        ({"beam_search_diversity_rate": np.array([-1.0], np.float32)}, "must be >= 0"),
    ],
)
def test_inputs_we_cannot_honour_are_refused_by_name(tensors, pattern):
    with pytest.raises(RequestError, match=pattern):
        check_trtllm_inputs(tensors)


def test_inputs_at_their_default_pass():
    check_trtllm_inputs(
        {
            "runtime_top_p_min": np.array([1e-6], np.float32),
            "runtime_top_p_reset_ids": np.array([-1], np.int32),
            "return_generation_logits": np.array([False]),
            "stop_words_list": np.array([[[0], [-1]]], np.int32),
            "embedding_bias": np.zeros((1, 4), np.float32),
            "lora_weights": np.zeros((1, 0, 0), np.float16),
            "len_penalty": np.array([0.7], np.float32),
        }
    )


class Sender:
    def __init__(self):
        self.sent = []

    def send(self, response=None, flags=0):
        self.sent.append((response, flags))

    def is_cancelled(self):
        return False


def _group(rows, decoupled):
    sender = Sender()
    group = ResponseGroup(
        sender,
        rows,
        decoupled=decoupled,
        final_flag=FINAL,
        build=lambda tensors: {k: v.tolist() for k, v in tensors.items()},
        build_error=lambda message, reason: ("error", message),
    )
    return sender, group


def _row(tokens, pad=0):
    return RowOutput(tokens, ResponseOptions(exclude_input=True), 3, len(tokens), pad)


def test_decoupled_rows_carry_batch_index_and_one_final_flag():
    sender, group = _group(2, decoupled=True)
    group.row(1).send(_row([5]), 0)
    group.row(0).send(_row([6, 7]), FINAL)
    group.row(1).send(None, FINAL)
    assert sender.sent == [
        ({"output_ids": [[[5]]], "sequence_length": [[1]], "batch_index": [[1]]}, 0),
        ({"output_ids": [[[6, 7]]], "sequence_length": [[2]], "batch_index": [[0]]}, 0),
        (None, FINAL),
    ]


def test_unary_batch_is_one_merged_response_padded_per_row():
    sender, group = _group(2, decoupled=False)
    group.row(1).send(_row([5], pad=9), FINAL)
    assert sender.sent == []
    group.row(0).send(_row([6, 7, 8]), FINAL)
    assert sender.sent == [
        (
            {
                "output_ids": [[[6, 7, 8]], [[5, 9, 9]]],
                "sequence_length": [[3], [1]],
                "batch_index": [[0], [1]],
            },
            FINAL,
        )
    ]
    merged = merge_rows([_row([1]), _row([2, 3])])
    assert merged["output_ids"].shape == (2, 1, 2)


def test_unary_batch_with_a_failed_row_is_one_error_naming_it():
    sender, group = _group(2, decoupled=False)
    group.row(0).send(_row([6]), FINAL)
    group.row(1).send(RowError("engine failure", FinishReason.ERROR), FINAL)
    assert sender.sent == [(("error", "row 1: engine failure"), FINAL)]


def test_vocabulary_from_the_model_files_where_they_say_it(tmp_path):
    from dynabatch.vocab import model_vocab_size

    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "config.json").write_text('{"pretrained_config": {"vocab_size": 128256}}')
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"vocab_size": 32000}')
    assert model_vocab_size(engine) == 128256
    assert model_vocab_size(hf) == 32000
    assert model_vocab_size(tmp_path) == 0  # no config.json: unknown, no check
    assert model_vocab_size("") == 0


def test_stop_word_lists_parse_as_tensorrt_llm_writes_them():
    from dynabatch.stop_words import parse_word_list

    # "7 8" and "9": ids [7, 8, 9], end offsets [2, 3], padded with -1
    words = np.array([[[7, 8, 9, 0], [2, 3, -1, -1]]], np.int32)
    assert parse_word_list("stop_words_list", words) == ((7, 8), (9,))
    assert parse_word_list("stop_words_list", np.array([[0], [-1]], np.int32)) == ()
    with pytest.raises(ValueError, match="stop_words_list: expected shape"):
        parse_word_list("stop_words_list", np.array([1, 2], np.int32))


def test_stop_watcher_cuts_after_the_word_across_chunks():
    from dynabatch.stop_words import StopWatcher

    w = StopWatcher(((5, 6, 7), (42,)))
    assert w.feed([1, 5]) == [1, 5]
    assert w.feed([6]) == [6]
    assert w.feed([7, 8, 9]) == [7]  # the word ends here; the rest is dropped
    assert w.hit and w.feed([10]) == []
    single = StopWatcher(((42,),))
    assert single.feed([1, 2, 42, 3]) == [1, 2, 42]
    assert StopWatcher(()).feed([1, 2]) == [1, 2]

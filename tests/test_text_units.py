"""The text pieces without a server: the shipped tokenizer (rebuilt identically, its
vocabulary the one the simulated engine emits), incremental decoding, stop strings,
TensorRT-LLM's word-list format, chat template."""

import json

import numpy as np
import pytest
from dynabatch.engines.simulated.tokens import TEXT_VOCAB_SIZE, output_vocab
from dynabatch.text.bls import StopStrings, parse_bls_request
from dynabatch.text.build import build_tokenizer
from dynabatch.text.processing import TextRequestError, decode_batch, words_list
from dynabatch.text.tokenizer import IncrementalDecoder, TextTokenizer
from dynabatch.text.tokenizer_dir import SHIPPED_TOKENIZER_DIR, resolve_tokenizer_dir
from text_client import TOKENIZER

TOK = TextTokenizer.load("")


def test_shipped_tokenizer_is_what_the_build_script_makes(tmp_path):
    build_tokenizer(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tmp_path / name).read_bytes() == (SHIPPED_TOKENIZER_DIR / name).read_bytes()


def test_simulated_engine_emits_ids_inside_the_shipped_vocabulary():
    assert TOK.vocab_size == TEXT_VOCAB_SIZE == TOKENIZER.get_vocab_size()
    assert output_vocab(32000) == TOK.vocab_size and output_vocab(1000) == 1000


def test_tokenizer_round_trips_text_and_knows_its_special_ids():
    text = "Hello! Dynamic batching keeps the GPU busy. héllo 日本"
    assert TOK.decode(TOK.encode(text)) == text
    assert TOK.encode(text) == TOKENIZER.encode(text).ids
    assert (TOK.eos_id, TOK.pad_id) == (0, 1)
    assert TOK.decode([TOK.eos_id, *TOK.encode("hi")]) == "hi"  # special tokens skipped


def test_chat_template_renders_chatml():
    prompt = TOK.apply_chat_template([{"role": "user", "content": "hi"}])
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert TOK.encode(prompt)[0] == 2  # <|im_start|> is one special token


def test_incremental_decoder_holds_back_a_split_character():
    ids = TOK.encode("日")
    assert len(ids) > 1  # the character spans byte tokens
    dec = IncrementalDecoder(TOK)
    pieces = [dec.add([i]) for i in ids]
    assert pieces[:-1] == [""] * (len(ids) - 1) and pieces[-1] == "日"
    dec2 = IncrementalDecoder(TOK)
    words = TOK.encode("one two three")
    assert "".join(dec2.add([i]) for i in words) + dec2.add([], final=True) == "one two three"


def test_stop_strings_never_send_a_stop_string():
    s = StopStrings(["STOP"])
    sent = [s.feed(x) for x in ("abc S", "TO", "P tail")]
    assert "".join(sent) == "abc " and s.stopped
    s = StopStrings(["xy"])
    assert s.feed("ab x") == "ab " and s.feed("z", final=True) == "xz" and not s.stopped


def test_words_list_is_tensorrt_llms_format():
    out = words_list(TOK, [["Hello", "GPU"], []])
    first = TOK.encode("Hello", False) + TOK.encode("GPU", False)
    assert out.shape == (2, 2, len(first)) and out.dtype == np.int32
    assert out[0, 0].tolist() == first
    ends = [len(TOK.encode("Hello", False)), len(first)]
    assert out[0, 1].tolist() == ends + [-1] * (len(first) - 2)
    assert out[1, 1].tolist() == [-1] * len(first)


def test_decode_batch_honours_sequence_length():
    ids = TOK.encode("good night")
    tokens = np.array([[ids + [5, 6]]], np.int32)
    out = decode_batch(TOK, tokens, np.array([[len(ids)]], np.int32))
    assert out.shape == (1, 1) and out[0, 0] == b"good night"


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"text_input": np.array([[b""]], object), "max_tokens": np.array([[3]])}, "empty"),
        ({"text_input": np.array([[b"hi"]], object), "max_tokens": np.array([[0]])}, ">= 1"),
        ({"text_input": np.array([[b"\xff"]], object), "max_tokens": np.array([[3]])}, "UTF-8"),
        ({"max_tokens": np.array([[3]])}, "missing required input(s): text_input"),
    ],
)
def test_bad_bls_request_names_the_input(arrays, message):
    with pytest.raises(TextRequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_bls_request(TOK, arrays)


def test_bls_maps_inputs_to_tensorrt_llm_names():
    req = parse_bls_request(
        TOK,
        {
            "text_input": np.array([[b"hi"]], object),
            "max_tokens": np.array([[4]], np.int32),
            "top_k": np.array([[3]], np.int32),
            "min_tokens": np.array([[2]], np.int32),
        },
    )
    inputs = req.engine_inputs(end_id=0, pad_id=1)
    assert inputs["runtime_top_k"].tolist() == [[3]] and inputs["min_length"].tolist() == [[2]]
    assert inputs["input_ids"].tolist() == [TOK.encode("hi")]
    assert inputs["request_output_len"].tolist() == [[4]]


def test_tokenizer_dir_must_hold_tokenizer_json(tmp_path):
    with pytest.raises(ValueError, match="no tokenizer.json"):
        resolve_tokenizer_dir(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text((SHIPPED_TOKENIZER_DIR / "tokenizer.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    other = TextTokenizer.load(str(tmp_path))
    assert other.eos_id == 3 and other.pad_id == 3 and other.chat_template is None

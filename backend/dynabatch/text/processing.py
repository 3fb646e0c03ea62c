"""Text <-> token tensors in the shapes of TensorRT-LLM's preprocessing and
postprocessing models (one row per request of a Triton batch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynabatch.text.tokenizer import TextTokenizer


class TextRequestError(ValueError):
    """A bad text request: the message names the input and what is allowed."""


@dataclass(frozen=True)
class EncodedPrompt:
    input_ids: list[int]
    request_output_len: int


def text_of(value: object, name: str = "text_input") -> str:
    """A STRING tensor element (bytes or str) -> str, rejecting what is not UTF-8."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TextRequestError(f"{name} is not valid UTF-8: {e}") from None
    if isinstance(value, str):
        return value
    raise TextRequestError(f"{name} must be a string, got {type(value).__name__}")


def encode_prompt(
    tokenizer: TextTokenizer,
    text: str,
    max_tokens: int,
    add_special_tokens: bool = True,
    text_name: str = "text_input",
    max_tokens_name: str = "max_tokens",
) -> EncodedPrompt:
    if not text:
        raise TextRequestError(f"{text_name} is empty: send at least one character of prompt")
    if max_tokens < 1:
        raise TextRequestError(f"{max_tokens_name} must be >= 1, got {max_tokens}")
    ids = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    if not ids:
        raise TextRequestError(f"{text_name} encodes to no tokens")
    return EncodedPrompt(ids, int(max_tokens))


def words_list(tokenizer: TextTokenizer, rows: list[list[str]]) -> np.ndarray:
    """TensorRT-LLM's word-list format, [batch, 2, L] INT32: row 0 the concatenated ids
    of every word, row 1 the cumulative end offsets, padded with 0 and -1."""
    flat: list[list[int]] = []
    offsets: list[list[int]] = []
    for words in rows:
        ids: list[int] = []
        ends: list[int] = []
        for word in words:
            if not word:
                continue
            ids.extend(tokenizer.encode(word, add_special_tokens=False))
            ends.append(len(ids))
        flat.append(ids)
        offsets.append(ends)
    width = max(1, max(len(r) for r in flat), max(len(r) for r in offsets))
    out = np.zeros((len(rows), 2, width), np.int32)
    out[:, 1, :] = -1
    for i, (ids, ends) in enumerate(zip(flat, offsets)):
        out[i, 0, : len(ids)] = ids
        out[i, 1, : len(ends)] = ends
    return out


def padded_ids(prompts: list[EncodedPrompt], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """[batch, L] ids padded with pad_id, and [batch, 1] lengths."""
    width = max(len(p.input_ids) for p in prompts)
    ids = np.full((len(prompts), width), pad_id, np.int32)
    for i, p in enumerate(prompts):
        ids[i, : len(p.input_ids)] = p.input_ids
    lengths = np.array([[len(p.input_ids)] for p in prompts], np.int32)
    return ids, lengths


def decode_batch(
    tokenizer: TextTokenizer,
    tokens: np.ndarray,
    sequence_length: np.ndarray,
    skip_special_tokens: bool = True,
) -> np.ndarray:
    """TOKENS_BATCH [batch, beams, L] + SEQUENCE_LENGTH [batch, beams] -> [batch, beams]
    UTF-8 bytes (a tokens tensor without the beam axis is taken as one beam)."""
    if tokens.ndim == 2:
        tokens = tokens[:, None, :]
    lengths = np.asarray(sequence_length).reshape(tokens.shape[0], -1)
    out = np.empty(tokens.shape[:2], dtype=object)
    for b in range(tokens.shape[0]):
        for beam in range(tokens.shape[1]):
            n = int(min(max(lengths[b, min(beam, lengths.shape[1] - 1)], 0), tokens.shape[2]))
            text = tokenizer.decode(tokens[b, beam, :n].tolist(), skip_special_tokens)
            out[b, beam] = text.encode("utf-8")
    return out


def output_counts(tokens: np.ndarray, sequence_length: np.ndarray) -> np.ndarray:
    """[batch, 1] tokens per request in this response (the first beam's length)."""
    lengths = np.asarray(sequence_length).reshape(tokens.shape[0], -1)[:, :1]
    width = tokens.shape[-1]
    return np.clip(lengths, 0, width).astype(np.int32)

"""Deterministic pseudo-tokens: a hash of (seed, request id, position) into the vocab.

The scalar and the vectorised form give the same numbers (a test checks), so streaming
(one token per event) and non-streaming (many per event) outputs agree.

Ids stay inside the vocabulary of the tokenizer the project ships
(dynabatch/text/tokenizer, 2048 tokens), so text models can decode every simulated
token; a test checks the two sizes agree.
"""

from __future__ import annotations

import numpy as np

_M = (1 << 64) - 1
_A, _B = 0x9E3779B97F4A7C15, 0xD1B54A32D192ED69
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB

# Size of the shipped tokenizer's vocabulary (special tokens included).
TEXT_VOCAB_SIZE = 2048


def output_vocab(model_vocab: int) -> int:
    """The id range the simulated engine emits: the model's vocabulary, cut to the
    shipped tokenizer's so that every emitted id decodes to text."""
    return min(model_vocab, TEXT_VOCAB_SIZE)


def token_base(seed: int, request_id: int) -> int:
    return (seed * _A + request_id * _B) & _M


def token_at(base: int, position: int, vocab: int) -> int:
    """splitmix64 finaliser of base + position, reduced to the vocab."""
    x = (base + position) & _M
    x = ((x ^ (x >> 30)) * _C1) & _M
    x = ((x ^ (x >> 27)) * _C2) & _M
    return (x ^ (x >> 31)) % vocab


def tokens_range(base: int, start: int, stop: int, vocab: int) -> list[int]:
    if stop - start == 1:  # a streaming event: one token (the hot path of a benchmark)
        return [token_at(base, start, vocab)]
    if stop - start <= 4:
        return [token_at(base, i, vocab) for i in range(start, stop)]
    return _vector(base, start, stop, vocab).tolist()


def first_position_of(base: int, token: int, limit: int, vocab: int) -> int:
    """Index of the first output position < limit whose token equals `token`, else -1."""
    if not 0 <= token < vocab or limit <= 0:
        return -1
    hits = np.flatnonzero(_vector(base, 0, limit, vocab) == token)
    return int(hits[0]) if hits.size else -1


def _vector(base: int, start: int, stop: int, vocab: int) -> np.ndarray:
    x = np.arange(start, stop, dtype=np.uint64) + np.uint64(base)  # wraps mod 2^64
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_C1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_C2)
    return (x ^ (x >> np.uint64(31))) % np.uint64(vocab)

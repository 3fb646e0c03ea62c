"""Stop words (`stop_words_list`): a request ends once its generated tokens end with one
of its stop sequences; the output keeps the stop sequence, as TensorRT-LLM's does.

Works for every engine: the model watches the tokens it is about to send and, on a
match, cuts the output after the stop sequence and stops the request (its KV blocks are
freed as for any stopped request). TensorRT-LLM's list format is [2, n] per row: the
concatenated token ids, then the end offset of each word, padded with -1.
"""

from __future__ import annotations

import numpy as np


def parse_word_list(name: str, value: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """[1, 2, n] or [2, n] -> the words; raises ValueError naming `name` when malformed."""
    a = np.asarray(value)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.shape[0] != 2:
        raise ValueError(f"{name}: expected shape [2, n] per row, got {list(np.shape(value))}")
    ids, offsets = a[0].tolist(), [int(o) for o in a[1] if o >= 0]
    words, start = [], 0
    for end in offsets:
        if end <= start or end > len(ids):
            raise ValueError(
                f"{name}: offsets must increase within the {len(ids)} token ids, got {end}"
            )
        words.append(tuple(int(t) for t in ids[start:end]))
        start = end
    return tuple(words)


class StopWatcher:
    """Feeds a row's generated tokens in order; says where the first stop word ends."""

    def __init__(self, words: tuple[tuple[int, ...], ...]) -> None:
        self.words = [list(w) for w in words if w]
        self.longest = max((len(w) for w in self.words), default=0)
        self.tail: list[int] = []  # the last longest-1 tokens fed (matches across chunks)
        self.hit = False

    def feed(self, tokens: list[int]) -> list[int]:
        """The part of `tokens` to deliver: all of it, up to and including the end of a
        stop word, or nothing once a stop word was seen."""
        if self.hit:
            return []
        if not self.words:
            return tokens
        for i, token in enumerate(tokens):
            self.tail.append(token)
            if any(self.tail[-len(w) :] == w for w in self.words if len(self.tail) >= len(w)):
                self.hit = True
                return tokens[: i + 1]
            if len(self.tail) > self.longest:
                del self.tail[0]
        return tokens

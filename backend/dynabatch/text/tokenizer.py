"""A Hugging Face tokenizer directory, loaded with the `tokenizers` library (no
transformers, no hub): encode, decode, special ids and the chat template."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynabatch.text.tokenizer_dir import resolve_tokenizer_dir


@dataclass
class TextTokenizer:
    directory: Path
    backend: Any  # tokenizers.Tokenizer
    eos_id: int
    pad_id: int
    bos_id: int | None
    add_bos: bool
    chat_template: str | None
    special_ids: frozenset[int]

    @classmethod
    def load(cls, tokenizer_dir: str = "") -> TextTokenizer:
        from tokenizers import Tokenizer

        path = resolve_tokenizer_dir(tokenizer_dir)
        backend = Tokenizer.from_file(str(path / "tokenizer.json"))
        config_file = path / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}

        def token_id(key: str) -> int | None:
            token = config.get(key)
            if isinstance(token, dict):  # AddedToken as saved by transformers
                token = token.get("content")
            return None if token is None else backend.token_to_id(token)

        eos = token_id("eos_token")
        if eos is None:
            raise ValueError(f"tokenizer_dir '{path}': tokenizer_config.json names no eos_token")
        pad = token_id("pad_token")
        added = backend.get_added_tokens_decoder()
        return cls(
            directory=path,
            backend=backend,
            eos_id=eos,
            pad_id=eos if pad is None else pad,
            bos_id=token_id("bos_token"),
            add_bos=bool(config.get("add_bos_token", False)),
            chat_template=config.get("chat_template"),
            special_ids=frozenset(i for i, t in added.items() if t.special),
        )

    @property
    def vocab_size(self) -> int:
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = self.backend.encode(text, add_special_tokens=add_special_tokens).ids
        if add_special_tokens and self.add_bos and self.bos_id is not None:
            if not ids or ids[0] != self.bos_id:
                ids = [self.bos_id, *ids]
        return list(ids)

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return str(self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def apply_chat_template(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool = True
    ) -> str:
        """Render `messages` as transformers does (sandboxed Jinja, same options)."""
        if not self.chat_template:
            raise ValueError(f"tokenizer_dir '{self.directory}' has no chat_template")
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        special = self.backend.get_added_tokens_decoder()
        eos_token = special[self.eos_id].content if self.eos_id in special else ""
        return env.from_string(self.chat_template).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            eos_token=eos_token,
            bos_token="" if self.bos_id is None else self.backend.id_to_token(self.bos_id),
        )


class IncrementalDecoder:
    """Text deltas for a growing token list: decode the whole list each time and send
    what is new, holding back a trailing partial UTF-8 character ("\ufffd") until the
    tokens that complete it arrive."""

    def __init__(self, tokenizer: TextTokenizer, skip_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.sent = ""

    def add(self, new_ids: list[int], final: bool = False) -> str:
        self.ids.extend(new_ids)
        text = self.tokenizer.decode(self.ids, self.skip_special_tokens)
        if not final:
            text = text.rstrip("\ufffd")
        delta = text[len(self.sent) :]
        self.sent = max(self.sent, text, key=len)
        return delta

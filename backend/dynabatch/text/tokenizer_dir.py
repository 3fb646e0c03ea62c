"""Where tokenizer directories live and what the shipped one holds."""

from __future__ import annotations

from pathlib import Path

# The tokenizer the project builds offline (scripts/build_tokenizer) and ships.
SHIPPED_TOKENIZER_DIR = Path(__file__).resolve().parent / "tokenizer"

# Special tokens of the shipped tokenizer, in id order (they take ids 0..3).
SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>")
SHIPPED_VOCAB_SIZE = 2048


def resolve_tokenizer_dir(value: str) -> Path:
    """`tokenizer_dir` parameter -> directory. Empty means the shipped tokenizer; any other
    value is a Hugging Face tokenizer directory (it must hold tokenizer.json)."""
    path = SHIPPED_TOKENIZER_DIR if not value.strip() else Path(value).expanduser()
    if not (path / "tokenizer.json").is_file():
        raise ValueError(
            f"tokenizer_dir '{value}': no tokenizer.json in {path} (a Hugging Face "
            "tokenizer directory saved with a fast tokenizer is needed)"
        )
    return path

"""Train the shipped byte-level BPE tokenizer on the project's own text (offline)."""

from __future__ import annotations

import json
from pathlib import Path

from dynabatch.text.tokenizer_dir import SHIPPED_TOKENIZER_DIR, SHIPPED_VOCAB_SIZE, SPECIAL_TOKENS

CORPUS_FILES = ("conversation.txt", "docs_corpus.txt")

# ChatML, the format many open chat models use; rendered with Jinja like transformers.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tokenizer(out_dir: Path, corpus_dir: Path = SHIPPED_TOKENIZER_DIR) -> list[Path]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=SHIPPED_VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines: list[str] = []
    for name in CORPUS_FILES:
        lines.extend((corpus_dir / name).read_text(encoding="utf-8").splitlines(keepends=True))
    tok.train_from_iterator(lines, trainer=trainer)

    out_dir.mkdir(parents=True, exist_ok=True)
    eos, pad = SPECIAL_TOKENS[0], SPECIAL_TOKENS[1]
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": eos,
        "pad_token": pad,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
        "additional_special_tokens": list(SPECIAL_TOKENS[2:]),
        "chat_template": CHAT_TEMPLATE,
    }
    special_map = {
        "eos_token": eos,
        "pad_token": pad,
        "additional_special_tokens": list(SPECIAL_TOKENS[2:]),
    }
    paths = [out_dir / "tokenizer.json", out_dir / "tokenizer_config.json"]
    paths.append(out_dir / "special_tokens_map.json")
    tok.save(str(paths[0]), pretty=True)
    paths[1].write_text(json.dumps(config, indent=2) + "\n")
    paths[2].write_text(json.dumps(special_map, indent=2) + "\n")
    return paths

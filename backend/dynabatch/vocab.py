"""The vocabulary size of the model behind a TensorRT-LLM engine, where its files say it.

Token ids are range-checked only against a vocabulary that is really known: the
`vocab_size` parameter, or the `config.json` of what `gpt_model_path` points at (a
TensorRT-LLM engine directory keeps it under `pretrained_config`, a Hugging Face
checkpoint at the top level). The simulated engine has no vocabulary: 0, no check.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("dynabatch.vocab")


def model_vocab_size(model_dir: str | Path | None) -> int:
    """vocab_size from `model_dir`/config.json; 0 when there is no such number."""
    if not model_dir:
        return 0
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    for section in (config.get("pretrained_config"), config):
        value = section.get("vocab_size") if isinstance(section, dict) else None
        if isinstance(value, int) and value > 0:
            log.info("token ids are checked against vocab_size %d from %s", value, path)
            return value
    return 0

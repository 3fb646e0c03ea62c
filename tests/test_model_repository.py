"""Both config.pbtxt files against the code: every parameter is declared by a spec and
loads, every input is one the request mapping reads (and the other way round)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dynabatch.config import ModelConfig, load_config
from dynabatch.request_mapping import INPUT_NAMES

REPO = Path(__file__).resolve().parents[1] / "model_repository"
MODELS = ("tensorrt_llm", "tensorrt_llm_static")


def _block(text: str, name: str) -> str:
    """The body of `name [ ... ]` at the top level of a config.pbtxt."""
    m = re.search(rf"^{name}\s*\[(.*?)^\]", text, re.S | re.M)
    assert m, f"no {name} block"
    return m.group(1)


def _parameters(text: str) -> dict[str, str]:
    pairs = re.findall(
        r'parameters\s*\{\s*key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"\s*\}\s*\}',
        text,
    )
    assert len(pairs) == text.count("parameters {"), "a parameter block did not parse"
    return dict(pairs)


@pytest.mark.parametrize("model", MODELS)
def test_config_pbtxt_inputs_are_the_request_mappings(model):
    text = (REPO / model / "config.pbtxt").read_text()
    names = re.findall(r'name:\s*"([^"]+)"', _block(text, "input"))
    assert sorted(names) == sorted(INPUT_NAMES)


@pytest.mark.parametrize("model", MODELS)
def test_config_pbtxt_parameters_are_declared_and_load(model):
    params = _parameters((REPO / model / "config.pbtxt").read_text())
    assert params, "no parameters"
    cfg = load_config(params)  # unknown or invalid ones raise ConfigError naming them
    assert isinstance(cfg, ModelConfig)
    assert cfg.policy == params.get("batch_policy", "adaptive")
    assert cfg.max_batch_size == int(params["max_batch_size"])

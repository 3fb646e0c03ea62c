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


def _other_value(spec):
    """A valid value other than the default (None when the spec has none to offer)."""
    if spec.choices:
        return next((c for c in spec.choices if c != spec.default), None)
    if spec.kind is bool:
        return "false" if spec.default else "true"
    if spec.kind in (int, float):
        value = spec.default + 1
        if spec.max is not None and value > spec.max:
            value = spec.default - 1
        return str(value)
    return None


def test_every_model_parameter_reaches_the_model_config():
    """ModelConfig is assembled by hand from MODEL_PARAMS: each one must change it."""
    from dynabatch.config import MODEL_PARAMS

    base = load_config({})
    for spec in MODEL_PARAMS:
        if spec.name == "engine":  # the TensorRT-LLM engines need a model path
            continue
        value = _other_value(spec)
        assert value is not None, f"no test value for {spec.name}"
        assert load_config({spec.name: value}) != base, f"{spec.name} does not reach ModelConfig"

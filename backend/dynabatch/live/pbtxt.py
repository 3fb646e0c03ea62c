"""Edit the few things we change in a config.pbtxt: the model name and `parameters`.

Text edits, not a protobuf round trip: the file keeps its comments and layout.
"""

from __future__ import annotations

import re

_PARAM = re.compile(
    r'parameters\s*[:{]?\s*\{?\s*key:\s*"(?P<key>[^"]+)"\s*value:?\s*\{\s*string_value:\s*"(?P<val>[^"]*)"\s*\}\s*\}',
    re.S,
)


def get_parameters(text: str) -> dict[str, str]:
    return {m.group("key"): m.group("val") for m in _PARAM.finditer(text)}


def set_parameters(text: str, values: dict[str, str]) -> str:
    """Replace the listed parameters' values; append the ones not present."""
    remaining = dict(values)

    def swap(m: re.Match) -> str:
        key = m.group("key")
        if key not in remaining:
            return m.group(0)
        value = str(remaining.pop(key))
        start, end = m.span("val")
        return m.group(0)[: start - m.start()] + value + m.group(0)[end - m.start() :]

    text = _PARAM.sub(swap, text)
    for key, value in remaining.items():
        text += f'\nparameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'
    return text


def set_model_name(text: str, name: str) -> str:
    """Set the top-level `name:` (the first one in the file), or add it."""
    pattern = re.compile(r'^name:\s*"[^"]*"', re.M)
    if pattern.search(text):
        return pattern.sub(f'name: "{name}"', text, count=1)
    return f'name: "{name}"\n' + text


def get_model_name(text: str) -> str | None:
    m = re.search(r'^name:\s*"([^"]*)"', text, re.M)
    return m.group(1) if m else None

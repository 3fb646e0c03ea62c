"""Typed, validated parameters from config.pbtxt (strings in, typed values out).

Every module that reads parameters declares them as `ParamSpec`s, so validation,
defaults and the README's parameter table all come from one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """An invalid parameter: the message names it and says what is allowed."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        super().__init__(f"invalid parameter '{name}' = {value!r}: {allowed}")
        self.name = name


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: type  # int, float, bool or str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: Sequence[str] | None = None
    group: str = "general"

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "text"
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"{self.kind.__name__} in [{lo}, {hi}]"

    def parse(self, raw: Any) -> Any:
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            return self.default
        text = str(raw).strip()
        try:
            if self.kind is bool:
                low = text.lower()
                if low not in _TRUE | _FALSE:
                    raise ValueError
                value: Any = low in _TRUE
            elif self.kind is int:
                value = int(float(text)) if float(text).is_integer() else int(text)
            elif self.kind is float:
                value = float(text)
                if value != value:  # NaN
                    raise ValueError
            else:
                value = text
        except ValueError:
            raise ConfigError(self.name, raw, self.allowed()) from None
        if self.choices and value not in self.choices:
            raise ConfigError(self.name, raw, self.allowed())
        if self.min is not None and value < self.min:
            raise ConfigError(self.name, raw, self.allowed())
        if self.max is not None and value > self.max:
            raise ConfigError(self.name, raw, self.allowed())
        return value


def parse_params(specs: Iterable[ParamSpec], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Parse the specs' parameters from `raw` (unknown keys are left for other readers)."""
    return {spec.name: spec.parse(raw.get(spec.name)) for spec in specs}


def check_known(
    raw: Mapping[str, Any],
    specs: Iterable[ParamSpec],
    ignore: Callable[[str], bool] = lambda name: False,
) -> None:
    """Reject parameters nobody declared (a typo must not be silently ignored)."""
    known = {s.name for s in specs}
    for name in raw:
        if name not in known and not ignore(name):
            raise ConfigError(
                name, raw[name], "unknown parameter; known: " + ", ".join(sorted(known))
            )


def markdown_table(specs: Iterable[ParamSpec]) -> str:
    rows = ["| parameter | default | allowed | meaning |", "|---|---|---|---|"]
    for s in specs:
        default = str(s.default).lower() if s.kind is bool else s.default
        rows.append(f"| `{s.name}` | `{default}` | {s.allowed()} | {s.help} |")
    return "\n".join(rows)

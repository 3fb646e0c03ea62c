"""Put the stand-in `tensorrt_llm` on sys.path for one test (and take it off again).

Usage in a test module:

    from stand_in.activate import stand_in_trtllm  # noqa: F401  (a pytest fixture)
"""

from __future__ import annotations

import os
import sys

import pytest

STAND_IN_DIR = os.path.dirname(os.path.abspath(__file__))


def _forget() -> None:
    for name in [m for m in sys.modules if m == "tensorrt_llm" or m.startswith("tensorrt_llm.")]:
        del sys.modules[name]


@pytest.fixture
def stand_in_trtllm(monkeypatch):
    """The stand-in tensorrt_llm package, importable for the duration of one test."""
    _forget()
    monkeypatch.syspath_prepend(STAND_IN_DIR)
    import tensorrt_llm

    yield tensorrt_llm
    _forget()

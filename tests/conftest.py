"""Shared fixtures. `triton` is one real tritonserver for the whole session (see
tests/triton_server.py); tests (re)load the model with the parameters they need."""

from __future__ import annotations

import pytest
from triton_server import TritonServer


@pytest.fixture(scope="session")
def triton(tmp_path_factory):
    server = TritonServer(tmp_path_factory.mktemp("triton")).start()
    try:
        yield server
    finally:
        server.stop()

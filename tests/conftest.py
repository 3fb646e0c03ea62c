"""Shared fixtures. `triton` is one real tritonserver for the whole session (see
tests/triton_server.py); tests (re)load the model with the parameters they need.

The session also checks that it leaks nothing (tests/session_leaks.py): a tritonserver,
Python-backend stub, lifeline watcher or /dev/shm region this session created and left
behind fails the run."""

from __future__ import annotations

import pytest
from session_leaks import SessionLeaks
from triton_server import TritonServer

_leaks: SessionLeaks | None = None


def pytest_sessionstart(session):
    global _leaks
    _leaks = SessionLeaks().start()


def pytest_sessionfinish(session, exitstatus):
    if _leaks is None:
        return
    left = _leaks.finish()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (
            "LEAK CHECK FAILED: this test session left behind (and has now ended) "
            + "; ".join(f"{kind}: {items}" for kind, items in left.items())
        )
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            print(message)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def triton(tmp_path_factory):
    server = TritonServer(tmp_path_factory.mktemp("triton")).start()
    try:
        yield server
    finally:
        server.stop()

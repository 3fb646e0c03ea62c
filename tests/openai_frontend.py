"""Start and stop the OpenAI-compatible frontend (python -m dynabatch.openai_api) against
a test tritonserver; the text models must already be loaded."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from triton_server import free_port


class Frontend:
    def __init__(self, server, startup_timeout_s: float = 30.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dynabatch.openai_api",
                "--port",
                str(self.port),
                "--triton-grpc",
                server.grpc_url,
                "--triton-metrics",
                server.metrics_url,
            ]
        )
        deadline = time.monotonic() + startup_timeout_s
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("OpenAI frontend did not become ready")
            time.sleep(0.1)  # polling for readiness, bounded by the deadline

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health/ready", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

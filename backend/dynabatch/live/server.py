"""Start and stop a local tritonserver (the binary shipped in nvidia-pytriton).

Binds HTTP, gRPC and metrics to 127.0.0.1 on free ports. The Python-backend stub runs
the first `python3` on PATH, so the running interpreter's bin/ goes first.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def triton_home() -> Path:
    import pytriton  # imported lazily: only live commands need it

    return Path(pytriton.__file__).parent / "tritonserver"


def kill_children(pid: int) -> None:
    """SIGKILL the direct children of `pid`. Prefer killing the server and then
    `TritonServer.end_leftovers()`: a stub killed this way leaves its /dev/shm region."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    for child in out.stdout.split():
        try:
            os.kill(int(child), 9)
        except (ProcessLookupError, ValueError):
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TritonServer:
    model_repository: Path
    log_path: Path | None = None
    startup_timeout_s: float = 90.0
    exit_timeout_s: int = 5
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    extra_args: tuple = ()  # more tritonserver flags
    health_path: str = "/v2/health/ready"  # what "started" means
    proc: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> TritonServer:
        home = triton_home()
        binary = home / "bin" / "tritonserver"
        stub = home / "backends" / "python" / "triton_python_backend_stub"
        if not stub.exists():
            raise RuntimeError(f"{stub} is missing: run `bash scripts/setup` first")
        env = dict(os.environ)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        cmd = [
            str(binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={home / 'backends'}",
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--allow-cpu-metrics=false",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--log-verbose=0",
            *self.extra_args,
        ]
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        if self.log_path:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://{self.http_url}{self.health_path}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"tritonserver exited with {self.proc.returncode} at start-up"
                    + self._log_hint()
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"tritonserver not ready after {self.startup_timeout_s:g} s" + self._log_hint()
        )

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except (OSError, TypeError):
            return ""

    def _log_hint(self) -> str:
        tail = self.log_tail()
        return "\n--- server log tail ---\n" + tail if tail else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            self.end_leftovers()
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=self.exit_timeout_s + 15)
        except subprocess.TimeoutExpired:
            # tritonserver 2.51 can hang after its exit timeout while a stream is open.
            # Kill the server only: its stubs then exit by themselves (lifeline), and
            # end_leftovers ends any that do not, with their /dev/shm regions (a stub
            # killed first would leave its region behind).
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.end_leftovers()

    def end_leftovers(self, wait_s: float = 5.0) -> list:
        """After the server exited (stopped or killed): end the stubs it left behind and
        their shared-memory regions (dynabatch.live.leftovers); returns those ended."""
        from .leftovers import end_leftovers

        if self.proc is None or self.proc.poll() is None:
            return []
        left = end_leftovers(self.proc.pid, wait_s)
        for stub in left:
            print(
                f"tritonserver {self.proc.pid} left stub {stub.pid} ({stub.model_path}); ended it",
                file=sys.stderr,
            )
        return left

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def build_repository(
    dest: Path, models: dict[str, Path], overrides: dict[str, dict[str, str]] | None = None
) -> Path:
    """Copy model directories into `dest` (name -> source dir), optionally renaming a
    model and overriding `parameters` entries in its config.pbtxt."""
    from .pbtxt import set_model_name, set_parameters

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name, src in models.items():
        target = dest / name
        shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        cfg = target / "config.pbtxt"
        text = cfg.read_text()
        text = set_model_name(text, name)
        if overrides and name in overrides:
            text = set_parameters(text, overrides[name])
        cfg.write_text(text)
    return dest

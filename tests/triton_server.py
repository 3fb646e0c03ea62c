"""A real tritonserver for the server tests (the binary from the nvidia-pytriton wheel).

The server runs in explicit model-control mode on free 127.0.0.1 ports, over a temp
copy of model_repository/. `load(name, **params)` rewrites that copy's config.pbtxt
parameters and (re)loads the model, so each test picks its own configuration without
a server restart. `stop()` always ends the process (terminate, then kill).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = ROOT / "model_repository"


def triton_home() -> Path:
    import pytriton
    return Path(pytriton.__file__).parent / "tritonserver"


def kill_children(pid: int) -> None:
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


_PARAM = re.compile(r'parameters\s*\{\s*key:\s*"(?P<key>[^"]+)"\s*value:\s*\{\s*'
                    r'string_value:\s*"(?P<val>[^"]*)"\s*\}\s*\}\s*')


def set_parameters(text: str, values: dict) -> str:
    """Replace the named parameters' values in config.pbtxt text; append new ones."""
    remaining = {k: str(v) for k, v in values.items()}

    def swap(m: re.Match) -> str:
        if m.group("key") not in remaining:
            return m.group(0)
        return (f'parameters {{\n  key: "{m.group("key")}"\n'
                f'  value: {{ string_value: "{remaining.pop(m.group("key"))}" }}\n}}\n')

    text = _PARAM.sub(swap, text)
    for key, value in remaining.items():
        text += f'parameters {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}\n'
    return text


class TritonServer:
    def __init__(self, workdir: Path, startup_timeout_s: float = 60.0) -> None:
        self.workdir = Path(workdir)
        self.repo = self.workdir / "models"
        self.log_path = self.workdir / "tritonserver.log"
        self.startup_timeout_s = startup_timeout_s
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.proc: Optional[subprocess.Popen] = None
        self._log = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> "TritonServer":
        shutil.copytree(MODEL_REPOSITORY, self.repo)
        home = triton_home()
        env = dict(os.environ)
        # The Python-backend stub runs the first python3 on PATH: the project's venv.
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        cmd = [str(home / "bin" / "tritonserver"), f"--model-repository={self.repo}",
               f"--backend-directory={home / 'backends'}", "--model-control-mode=explicit",
               "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
               "--metrics-address=127.0.0.1", f"--http-port={self.http_port}",
               f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
               "--allow-metrics=true", "--allow-gpu-metrics=false", "--metrics-interval-ms=100",
               "--exit-timeout-secs=5", "--log-verbose=0"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({self.proc.returncode}):\n{self.log_tail()}")
            if self._get(f"http://{self.http_url}/v2/health/live") == 200:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tritonserver not live after {self.startup_timeout_s} s:\n{self.log_tail()}")

    def load(self, name: str = "tensorrt_llm", **params) -> None:
        """Rewrite the model's parameters (temp copy) and (re)load it; raises on failure."""
        import tritonclient.http as http
        config = self.repo / name / "config.pbtxt"
        base = (MODEL_REPOSITORY / name / "config.pbtxt").read_text()
        config.write_text(set_parameters(base, params))
        client = http.InferenceServerClient(self.http_url, network_timeout=120.0)
        try:
            client.load_model(name)
            deadline = time.monotonic() + 30
            while not client.is_model_ready(name):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"model {name} not ready:\n{self.log_tail()}")
                time.sleep(0.1)
        finally:
            client.close()

    def unload(self, name: str = "tensorrt_llm") -> None:
        import tritonclient.http as http
        client = http.InferenceServerClient(self.http_url, network_timeout=60.0)
        try:
            client.unload_model(name)
            deadline = time.monotonic() + 30
            while client.is_model_ready(name):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"model {name} still ready after unload")
                time.sleep(0.1)
        finally:
            client.close()

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
            return r.read().decode()

    def metric(self, family: str, model: str = "tensorrt_llm", text: Optional[str] = None,
               **labels) -> Optional[float]:
        """The value of one sample of `family` for `model` with the given labels
        (from `text`, one scrape, when given)."""
        for line in (text if text is not None else self.metrics()).splitlines():
            if not line.startswith(family + "{"):
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(family):line.index("}") + 1]))
            want = {"model": model, **{k: str(v) for k, v in labels.items()}}
            if all(found.get(k) == v for k, v in want.items()):
                return float(line.rsplit(" ", 1)[1])
        return None

    def is_ready(self, name: str = "tensorrt_llm") -> bool:
        return self._get(f"http://{self.http_url}/v2/models/{name}/ready") == 200

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                # tritonserver 2.51 can hang after its exit timeout; its Python-backend
                # stubs do not always notice a killed parent, so end them first
                kill_children(self.proc.pid)
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _get(url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except Exception:
            return 0


class Stream:
    """One tritonclient gRPC bidirectional stream; collects responses per request id."""

    def __init__(self, url: str, model: str = "tensorrt_llm") -> None:
        import queue

        import tritonclient.grpc as grpc
        self.grpc = grpc
        self.model = model
        self.client = grpc.InferenceServerClient(url)
        self.responses: "queue.Queue" = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.responses.put((result, error)))
        self.tokens: dict[str, list[int]] = {}
        self.count: dict[str, int] = {}
        self.finished: set[str] = set()
        self.finals: dict[str, int] = {}  # final responses per id (a `stop` reuses the id)
        self.errors: list[str] = []

    def send(self, request_id: str, input_ids, output_len: Optional[int], *, streaming=True,
             parameters: Optional[dict] = None, **extra) -> None:
        import numpy as np
        if input_ids is not None and not isinstance(input_ids, np.ndarray):
            input_ids = np.asarray([input_ids], dtype=np.int32)  # list: batch of one
        if streaming is not None and not isinstance(streaming, np.ndarray):
            streaming = np.asarray([[streaming]], dtype=bool)
        tensors = {"input_ids": input_ids, "streaming": streaming}
        if output_len is not None:
            tensors["request_output_len"] = np.asarray([[output_len]], dtype=np.int32)
        tensors.update(extra)  # name -> numpy array (its dtype picks the Triton type)
        tensors = {k: v for k, v in tensors.items() if v is not None}
        from tritonclient.utils import np_to_triton_dtype
        inputs = []
        for name, value in tensors.items():
            a = np.asarray(value)
            t = self.grpc.InferInput(name, list(a.shape), np_to_triton_dtype(a.dtype))
            t.set_data_from_numpy(a)
            inputs.append(t)
        self.client.async_stream_infer(self.model, inputs, request_id=request_id,
                                       parameters=parameters, enable_empty_final_response=True)

    def pump(self, timeout: float = 0.5) -> bool:
        """Take one response off the stream; False when none came within timeout."""
        import queue
        try:
            result, error = self.responses.get(timeout=timeout)
        except queue.Empty:
            return False
        if error is not None:
            self.errors.append(str(error))
            return True
        resp = result.get_response()
        rid = resp.id
        self.count[rid] = self.count.get(rid, 0) + 1
        ids = result.as_numpy("output_ids")
        if ids is not None:
            self.tokens.setdefault(rid, []).extend(int(t) for t in ids.reshape(-1))
        final = resp.parameters.get("triton_final_response")
        if final is not None and final.bool_param:
            self.finished.add(rid)
            self.finals[rid] = self.finals.get(rid, 0) + 1
        return True

    def wait(self, until, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream: condition not met in {timeout} s; finished="
                                   f"{sorted(self.finished)} errors={self.errors[:3]}")
            self.pump(0.2)

    def close(self, cancel: bool = False) -> None:
        try:
            self.client.stop_stream(cancel_requests=cancel)
        finally:
            self.client.close()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    """Poll `predicate` until it returns a truthy value; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)

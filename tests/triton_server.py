"""A real tritonserver for the server tests (the binary from the nvidia-pytriton wheel).

The server runs in explicit model-control mode on free 127.0.0.1 ports, over a temp
copy of model_repository/. `load(name, **params)` rewrites that copy's config.pbtxt
parameters and (re)loads the model, so each test picks its own configuration without
a server restart. `stop()` always ends the process (terminate, then kill).
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.request
from pathlib import Path

from dynabatch.live.models import STATIC_MODEL, UNARY_MODEL
from dynabatch.live.pbtxt import set_parameters
from dynabatch.live.server import TritonServer as LiveTritonServer
from dynabatch.live.server import free_port, kill_children  # noqa: F401  (used by tests)

ROOT = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = ROOT / "model_repository"
# models outside the default repository, copied in under these names: the demo's
# static baseline and the non-decoupled twin of tensorrt_llm
EXTRA_MODELS = {"tensorrt_llm_static": STATIC_MODEL, "tensorrt_llm_unary": UNARY_MODEL}


def _source_config(name: str) -> str:
    """config.pbtxt of a model the tests can load, named as it is loaded."""
    if name in EXTRA_MODELS:
        text = (EXTRA_MODELS[name] / "config.pbtxt").read_text()
        return re.sub(r'^name: "[^"]*"', f'name: "{name}"', text, count=1, flags=re.M)
    return (MODEL_REPOSITORY / name / "config.pbtxt").read_text()


class TritonServer(LiveTritonServer):
    """The project's own launcher (dynabatch.live.server) in explicit model-control
    mode over a temp copy of model_repository/, with test helpers on top."""

    def __init__(self, workdir: Path, startup_timeout_s: float = 60.0) -> None:
        self.workdir = Path(workdir)
        self.repo = self.workdir / "models"
        super().__init__(
            model_repository=self.repo,
            log_path=self.workdir / "tritonserver.log",
            startup_timeout_s=startup_timeout_s,
            exit_timeout_s=5,
            extra_args=("--model-control-mode=explicit", "--metrics-interval-ms=100"),
            health_path="/v2/health/live",
        )

    def start(self) -> TritonServer:
        shutil.copytree(MODEL_REPOSITORY, self.repo)
        for name, source in EXTRA_MODELS.items():
            shutil.copytree(source, self.repo / name)
            (self.repo / name / "config.pbtxt").write_text(_source_config(name))
        return super().start()

    def load(self, name: str = "tensorrt_llm", **params) -> None:
        """Rewrite the model's parameters (temp copy) and (re)load it; raises on failure."""
        import tritonclient.http as http

        config = self.repo / name / "config.pbtxt"
        base = _source_config(name)
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

    def metric(
        self, family: str, model: str = "tensorrt_llm", text: str | None = None, **labels
    ) -> float | None:
        """The value of one sample of `family` for `model` with the given labels
        (from `text`, one scrape, when given)."""
        for line in (text if text is not None else self.metrics()).splitlines():
            if not line.startswith(family + "{"):
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(family) : line.index("}") + 1]))
            want = {"model": model, **{k: str(v) for k, v in labels.items()}}
            if all(found.get(k) == v for k, v in want.items()):
                return float(line.rsplit(" ", 1)[1])
        return None

    def is_ready(self, name: str = "tensorrt_llm") -> bool:
        return self._get(f"http://{self.http_url}/v2/models/{name}/ready") == 200

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
        self.responses: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.responses.put((result, error)))
        self.tokens: dict[str, list[int]] = {}
        self.count: dict[str, int] = {}
        self.finished: set[str] = set()
        self.finals: dict[str, int] = {}  # final responses per id (a `stop` reuses the id)
        self.errors: list[str] = []

    def send(
        self,
        request_id: str,
        input_ids,
        output_len: int | None,
        *,
        streaming=True,
        parameters: dict | None = None,
        **extra,
    ) -> None:
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
        self.client.async_stream_infer(
            self.model,
            inputs,
            request_id=request_id,
            parameters=parameters,
            enable_empty_final_response=True,
        )

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
                raise TimeoutError(
                    f"stream: condition not met in {timeout} s; finished="
                    f"{sorted(self.finished)} errors={self.errors[:3]}"
                )
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

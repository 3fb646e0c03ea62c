"""Trace-replay load generator: tritonclient gRPC streaming, requests sent at their
arrival times, per-request TTFT / TPOT / end-to-end latency measured at the client.

The hidden true output length of a trace request goes to the server as the request
parameter `true_output_len` (only the simulated engine honours it: it ends the
request there, emulating EOS); `request_output_len` carries the client's max tokens.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..bench.metrics import RequestRecord
from ..bench.workload import Workload

TRUE_LEN_PARAM = "true_output_len"


@dataclass
class LiveRecord:
    """One request as the client saw it; times are seconds from the run's start."""

    request_id: int
    arrival_time: float  # scheduled arrival (trace time)
    prompt_len: int
    max_new_tokens: int
    true_output_len: int
    send_time: float = 0.0
    first_token_time: float | None = None
    finish_time: float | None = None
    output_tokens: int = 0
    responses: int = 0
    error: str | None = None

    def to_record(self, time_scale: float = 1.0) -> RequestRecord:
        """The benchmark's record, on the engine's clock (wall seconds / time_scale), so
        live and virtual-clock runs go through the same `summarize`."""
        k = 1.0 / time_scale
        scale = lambda t: None if t is None else t * k
        # A reply that starts with an error is a refusal (queue full, bad input).
        rejected = self.error is not None and self.output_tokens == 0
        return RequestRecord(
            arrival=self.arrival_time * k,
            first_token=scale(self.first_token_time),
            finish=scale(self.finish_time),
            prompt_tokens=self.prompt_len,
            output_tokens=self.output_tokens,
            completed=self.ok,
            rejected=rejected,
        )

    @property
    def ok(self) -> bool:
        return self.error is None and self.finish_time is not None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_time is None else self.first_token_time - self.arrival_time

    @property
    def tpot(self) -> float | None:
        if self.first_token_time is None or self.finish_time is None or self.output_tokens < 2:
            return None
        return (self.finish_time - self.first_token_time) / (self.output_tokens - 1)

    @property
    def e2e(self) -> float | None:
        return None if self.finish_time is None else self.finish_time - self.arrival_time


@dataclass
class ModelInputs:
    """What the model declares, so one client serves batching and non-batching configs."""

    batch_dim: bool
    names: set = field(default_factory=set)

    @classmethod
    def from_config(cls, config: dict) -> ModelInputs:
        return cls(
            batch_dim=int(config.get("max_batch_size", 0)) > 0,
            names={i["name"] for i in config.get("input", [])},
        )


def prompt_ids(request_id: int, length: int) -> np.ndarray:
    """Deterministic pseudo-prompt (token ids in [100, 30000))."""
    return (100 + (np.arange(length, dtype=np.int64) * 7919 + request_id * 104729) % 29900).astype(
        np.int32
    )


def build_inputs(
    grpcclient, spec: ModelInputs, request_id: int, prompt_len: int, max_new_tokens: int
):
    def tensor(name: str, array: np.ndarray, dtype: str):
        if spec.batch_dim:
            array = array[np.newaxis, ...]
        t = grpcclient.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        return t

    inputs = [
        tensor("input_ids", prompt_ids(request_id, prompt_len), "INT32"),
        tensor("request_output_len", np.array([max_new_tokens], np.int32), "INT32"),
    ]
    if "input_lengths" in spec.names:
        inputs.append(tensor("input_lengths", np.array([prompt_len], np.int32), "INT32"))
    if "streaming" in spec.names:
        inputs.append(tensor("streaming", np.array([True]), "BOOL"))
    return inputs


class _Collector:
    """The stream callback: stamps responses as they arrive (gRPC's thread)."""

    def __init__(self, records: dict[int, LiveRecord], t0: float) -> None:
        self.records = records
        self.t0 = t0
        self.lock = threading.Lock()
        self.open = 0
        self.done = threading.Event()
        self.orphan_errors: list[str] = []  # stream errors arrive without a request id

    def __call__(self, result, error) -> None:
        now = time.monotonic() - self.t0
        with self.lock:
            if error is not None:
                self.orphan_errors.append(str(error))
                self._closed()
                return
            response = result.get_response()
            rec = self.records.get(int(response.id))
            if rec is None or rec.finish_time is not None:
                return
            out = result.as_numpy("output_ids") if response.outputs else None
            n = int(out.shape[-1]) if out is not None and out.size else 0
            if n:
                rec.responses += 1
                rec.output_tokens += n
                if rec.first_token_time is None:
                    rec.first_token_time = now
            final = response.parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                rec.finish_time = now
                self._closed()

    def _closed(self) -> None:
        self.open -= 1
        if self.open <= 0:
            self.done.set()


def replay(
    url: str,
    model: str,
    workload: Workload,
    time_scale: float = 1.0,
    drain_timeout_s: float = 60.0,
    send_true_len: bool = True,
    id_base: int = 1,
) -> tuple[list[LiveRecord], float]:
    """Send the workload's requests at their arrival times (x `time_scale`, to match an
    engine running that much faster than real) on one gRPC stream.

    Every request asks for the workload's `max_new_tokens` (the benchmark's rule: a
    client does not know the answer's length); the true length goes as the
    `true_output_len` parameter. Returns (records in wall seconds, duration_s).
    """
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    spec = ModelInputs.from_config(client.get_model_config(model, as_json=True)["config"])
    records: dict[int, LiveRecord] = {}
    for i, item in enumerate(workload.items):
        records[id_base + i] = LiveRecord(
            id_base + i,
            item.arrival_s * time_scale,
            item.prompt_len,
            workload.max_new_tokens,
            item.true_output_len,
        )
    prepared = [
        (rid, build_inputs(grpcclient, spec, rid, rec.prompt_len, rec.max_new_tokens))
        for rid, rec in records.items()
    ]
    t0 = time.monotonic()
    collector = _Collector(records, t0)
    collector.open = len(records)
    client.start_stream(callback=collector)
    try:
        for rid, inputs in prepared:
            rec = records[rid]
            delay = rec.arrival_time - (time.monotonic() - t0)
            if delay > 0:
                time.sleep(delay)
            rec.send_time = time.monotonic() - t0
            params = {TRUE_LEN_PARAM: rec.true_output_len} if send_true_len else None
            client.async_stream_infer(
                model,
                inputs,
                request_id=str(rid),
                enable_empty_final_response=True,
                parameters=params,
            )
        collector.done.wait(timeout=drain_timeout_s)
    finally:
        client.stop_stream(cancel_requests=True)
        client.close()
    end = time.monotonic() - t0
    with collector.lock:
        # tritonclient drops the request id of an error on a stream: hand the error
        # messages to the requests that never finished.
        orphans = list(collector.orphan_errors)
        for rec in records.values():
            if rec.finish_time is None and rec.error is None:
                rec.error = (
                    orphans.pop(0)
                    if orphans
                    else f"no final response within {drain_timeout_s:g} s after the last send"
                )
    finished = [r.finish_time for r in records.values() if r.finish_time is not None]
    duration = max(finished) if finished else end
    return list(records.values()), duration


def main(argv: list[str] | None = None) -> int:
    import argparse
    import csv
    import json
    from pathlib import Path

    from ..bench.metrics import Slo, summarize
    from ..bench.workload import load_trace

    ap = argparse.ArgumentParser(prog="scripts/replay", description=__doc__.splitlines()[0])
    ap.add_argument("trace", help="Azure-format CSV (TIMESTAMP,ContextTokens,GeneratedTokens)")
    ap.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC host:port")
    ap.add_argument("-m", "--model", default="tensorrt_llm")
    ap.add_argument(
        "--rate-scale", type=float, default=1.0, help="multiply the trace's arrival rate"
    )
    ap.add_argument("--first-n", type=int, default=200)
    ap.add_argument("--window-s", type=float, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="wall seconds per engine second (the server's simulated time scale; 1 on a GPU)",
    )
    ap.add_argument("--no-true-len", action="store_true", help=f"do not send {TRUE_LEN_PARAM}")
    ap.add_argument("--slo-ttft-s", type=float, default=2.0)
    ap.add_argument("--slo-tpot-ms", type=float, default=100.0)
    ap.add_argument("--drain-timeout-s", type=float, default=300.0)
    ap.add_argument("--out", default="out/replay")
    a = ap.parse_args(argv)
    wl = load_trace(
        a.trace,
        rate_scale=a.rate_scale,
        first_n=a.first_n,
        window_s=a.window_s,
        max_new_tokens=a.max_new_tokens,
    )
    records, _ = replay(
        a.url,
        a.model,
        wl,
        time_scale=a.time_scale,
        drain_timeout_s=a.drain_timeout_s,
        send_true_len=not a.no_true_len,
    )
    row = {
        "model": a.model,
        "workload": wl.name,
        "clock": "live",
        **summarize(
            [r.to_record(a.time_scale) for r in records],
            None,
            Slo(a.slo_ttft_s, a.slo_tpot_ms / 1000.0),
        ),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(row, indent=1))
    with open(out / "requests.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "request_id",
                "arrival_s",
                "prompt_len",
                "true_output_len",
                "output_tokens",
                "ttft_s",
                "tpot_s",
                "e2e_s",
                "error",
            ]
        )
        for r in records:
            w.writerow(
                [
                    r.request_id,
                    r.arrival_time,
                    r.prompt_len,
                    r.true_output_len,
                    r.output_tokens,
                    r.ttft,
                    r.tpot,
                    r.e2e,
                    r.error or "",
                ]
            )
    for k in (
        "requests",
        "completed",
        "failed",
        "output_tok_s",
        "ttft_p50_s",
        "ttft_p99_s",
        "tpot_p50_s",
        "tpot_p99_s",
        "e2e_p99_s",
        "sla_attainment",
        "goodput_rps",
    ):
        print(f"{k:>16}: {row[k]:.4g}" if isinstance(row[k], float) else f"{k:>16}: {row[k]}")
    print(f"written: {out / 'summary.json'}, {out / 'requests.csv'}")
    return 1 if row["failed"] else 0

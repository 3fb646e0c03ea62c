"""Soak run: a long closed-loop load through a real tritonserver, sampled per window.

The run is `duration_s / window_s` windows of `window_s` seconds of load each. The load
keeps `load_fraction` x `max_batch_size` requests in flight (the batch the
executor can hold is the model's capacity; 0.8 = "about 80 % of capacity") on one gRPC
stream, and mixes in client cancellations (a request on its own stream, cancelled with
`stop_stream(cancel_requests=True)` after its first tokens) and bad requests (each
must get exactly one error). Every `window_s` the load pauses: once the in-flight
requests have finished, that idle moment is sampled (KV blocks used, active requests,
the stub's RSS, the server's request counters); per window the client's P99 TTFT and
TPOT are kept. The report prints the drift: RSS from window 2 to the last, P99 TPOT of
the last window against the second, and the lost requests (accepted by the server but
never answered with exactly one final response).

    python -m dynabatch.live.soak --duration-s 600        (scripts/soak)
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .leftovers import stubs_of
from .scrape import parse_prometheus

MODEL = "tensorrt_llm"
OUTCOMES = ("completed", "cancelled", "failed")  # an accepted request ends as one of these
BAD_REQUESTS = (  # (what, extra tensors, parameters, text the error must contain)
    ("request_output_len 0", {"request_output_len": 0}, None, "request_output_len"),
    ("negative token id", {"input_ids": -7}, None, "input_ids holds token id -7"),
    ("unknown request parameter", {}, {"request_priorty": 1}, "unknown request parameter"),
)


@dataclass
class SoakConfig:
    duration_s: float = 600.0
    window_s: float = 60.0
    load_fraction: float = 0.8
    max_batch_size: int = 16
    sim_profile: str = "llama-2-13b-a100-40gb"
    sim_time_scale: float = 1.0
    prompt_tokens: tuple[int, int] = (8, 64)
    output_tokens: tuple[int, int] = (8, 64)
    cancel_fraction: float = 0.05
    bad_fraction: float = 0.03
    seed: int = 20240611
    idle_bound_s: float = 10.0  # an idle moment must reach KV 0 / active 0 within this


@dataclass
class Request:
    rid: str
    kind: str  # ok | cancel | bad
    output_len: int
    sent: float
    first: float | None = None
    last: float | None = None
    tokens: int = 0
    responses: int = 0
    finals: int = 0
    errors: list[str] = field(default_factory=list)

    def tpot(self) -> float | None:
        if self.first is None or self.last is None or self.tokens < 2:
            return None
        return (self.last - self.first) / (self.tokens - 1)


@dataclass
class Window:
    index: int
    requests: int
    completed: int
    cancelled: int
    bad: int
    p99_ttft_ms: float | None
    p99_tpot_ms: float | None
    idle_kv_used_blocks: float | None
    idle_active_requests: float | None
    idle_queue: float | None
    idle_after_s: float
    stub_rss_mb: float | None


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class SoakClient:
    """The load: one shared stream for ordinary requests, one stream per cancellation,
    one stream for bad requests (one at a time, so each error is attributable)."""

    def __init__(self, grpc_url: str, cfg: SoakConfig) -> None:
        import tritonclient.grpc as grpc

        self.grpc = grpc
        self.url = grpc_url
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.requests: dict[str, Request] = {}
        self.lock = threading.Condition()
        self.inflight: set[str] = set()
        self.to_cancel: queue.Queue = queue.Queue()
        self.cancel_clients: dict[str, object] = {}
        self.unattributed: list[str] = []
        self.seq = 0
        self.closing = False
        self.client = grpc.InferenceServerClient(grpc_url)
        self.client.start_stream(callback=self._on_response)
        self.bad_client = grpc.InferenceServerClient(grpc_url)
        self.bad_answers: queue.Queue = queue.Queue()
        self.bad_client.start_stream(
            callback=lambda result, error: self.bad_answers.put((result, error))
        )

    def _inputs(self, prompt: np.ndarray, output_len: int) -> list:
        out = []
        for name, array in (
            ("input_ids", prompt.reshape(1, -1).astype(np.int32)),
            ("request_output_len", np.asarray([[output_len]], np.int32)),
            ("streaming", np.asarray([[True]])),
        ):
            t = self.grpc.InferInput(
                name, list(array.shape), "BOOL" if array.dtype == bool else "INT32"
            )
            t.set_data_from_numpy(array)
            out.append(t)
        return out

    def _prompt(self) -> np.ndarray:
        n = self.rng.randint(*self.cfg.prompt_tokens)
        return np.asarray([self.rng.randint(1, 31999) for _ in range(n)], np.int32)

    def _on_response(self, result, error) -> None:
        now = time.monotonic()
        with self.lock:
            if error is not None:  # the shared stream carries only valid requests
                if not self.closing:  # closing cancels the stream: not an answer
                    self.unattributed.append(str(error))
                self.lock.notify_all()
                return
            resp = result.get_response()
            req = self.requests.get(resp.id)
            if req is None:
                self.unattributed.append(f"response for unknown id {resp.id}")
                return
            self._record(req, result, resp, now)

    def _record(self, req: Request, result, resp, now: float) -> None:
        req.responses += 1
        ids = result.as_numpy("output_ids")
        n = 0 if ids is None else int(ids.size)
        if n:
            req.first = req.first if req.first is not None else now
            req.last = now
            req.tokens += n
        final = resp.parameters.get("triton_final_response")
        if final is not None and final.bool_param:
            req.finals += 1
            self.inflight.discard(req.rid)
            self.lock.notify_all()
        elif req.kind == "cancel" and req.tokens >= 2 and req.rid in self.inflight:
            self.to_cancel.put(req.rid)

    def send_ok(self) -> None:
        self.seq += 1
        rid = f"r{self.seq}"
        out = self.rng.randint(*self.cfg.output_tokens)
        req = Request(rid, "ok", out, time.monotonic())
        with self.lock:
            self.requests[rid] = req
            self.inflight.add(rid)
        self.client.async_stream_infer(
            MODEL,
            self._inputs(self._prompt(), out),
            request_id=rid,
            enable_empty_final_response=True,
        )

    def send_cancel(self) -> None:
        self.seq += 1
        rid = f"c{self.seq}"
        req = Request(rid, "cancel", 400, time.monotonic())
        client = self.grpc.InferenceServerClient(self.url)

        def on_response(result, error, req=req) -> None:
            with self.lock:
                if error is not None:
                    req.errors.append(str(error))
                    return
                self._record(req, result, result.get_response(), time.monotonic())

        client.start_stream(callback=on_response)
        with self.lock:
            self.requests[rid] = req
            self.inflight.add(rid)
            self.cancel_clients[rid] = client
        client.async_stream_infer(
            MODEL,
            self._inputs(self._prompt(), 400),
            request_id=rid,
            enable_empty_final_response=True,
        )

    def do_cancels(self) -> None:
        while True:
            try:
                rid = self.to_cancel.get_nowait()
            except queue.Empty:
                return
            with self.lock:
                client = self.cancel_clients.pop(rid, None)
            if client is None:
                continue
            client.stop_stream(cancel_requests=True)
            client.close()
            with self.lock:
                self.inflight.discard(rid)
                self.lock.notify_all()

    def send_bad(self) -> None:
        """One bad request on the bad stream; waits (bounded) for its one error."""
        self.seq += 1
        what, tensors, params, expect = self.rng.choice(BAD_REQUESTS)
        rid = f"b{self.seq}"
        req = Request(rid, "bad", 4, time.monotonic())
        prompt = self._prompt()
        if "input_ids" in tensors:
            prompt[0] = tensors["input_ids"]
        inputs = self._inputs(prompt, tensors.get("request_output_len", 4))
        self.requests[rid] = req
        self.bad_client.async_stream_infer(
            MODEL, inputs, request_id=rid, parameters=params, enable_empty_final_response=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                result, error = self.bad_answers.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if error is not None:
                req.errors.append(str(error))
                req.finals += 1
                if expect not in str(error):
                    req.errors.append(f"expected an error about {expect!r}")
                return
            req.errors.append("a bad request was answered with data")
            return
        req.errors.append("no answer to a bad request within 10 s")

    def run_window(self, until: float) -> None:
        target = max(1, round(self.cfg.load_fraction * self.cfg.max_batch_size))
        while time.monotonic() < until:
            self.do_cancels()
            with self.lock:
                room = target - len(self.inflight)
                if room <= 0:
                    self.lock.wait(0.05)
                    continue
            draw = self.rng.random()
            if draw < self.cfg.bad_fraction:
                self.send_bad()
            elif draw < self.cfg.bad_fraction + self.cfg.cancel_fraction:
                self.send_cancel()
            else:
                self.send_ok()

    def drain(self, bound_s: float) -> bool:
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            self.do_cancels()
            with self.lock:
                if not self.inflight:
                    return True
                self.lock.wait(0.05)
        return False

    def close(self) -> None:
        self.closing = True
        for c in [self.client, self.bad_client, *self.cancel_clients.values()]:
            try:
                c.stop_stream(cancel_requests=True)
                c.close()
            except Exception:
                pass


def scrape(url: str) -> dict[tuple, float]:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for s in parse_prometheus(text):
        if s.label("model") == MODEL:
            out[(s.name, *(v for k, v in s.labels if k not in ("model", "version")))] = s.value
    return out


def _settled(m: dict) -> bool:
    """Idle as the server sees it: no KV block used, nothing active or queued, and
    every accepted request has its outcome counted."""
    answered = sum(m.get(("dynabatch_requests_total", o), 0) for o in OUTCOMES)
    return (
        m.get(("nv_trt_llm_kv_cache_block_metrics", "used")) == 0
        and m.get(("nv_trt_llm_request_metrics", "active")) == 0
        and m.get(("dynabatch_queue_length",)) == 0
        and m.get(("dynabatch_requests_total", "accepted")) == answered
    )


def idle_sample(metrics_url: str, bound_s: float) -> tuple[dict, float]:
    """Poll /metrics until the server is idle (`_settled`) or `bound_s` passed: the
    gauges refresh every metrics interval, and a request its client just cancelled can
    still be waiting for the next cancellation check. Returns the last scrape and the
    seconds it took; a leak shows as a non-zero value after `bound_s`."""
    t0 = time.monotonic()
    while True:
        m = scrape(metrics_url)
        if _settled(m) or time.monotonic() - t0 > bound_s:
            return m, time.monotonic() - t0
        time.sleep(0.2)


def model_stub(server_pid: int, bound_s: float = 30.0) -> int | None:
    """The stub serving MODEL. Right after a reload the old stub may still be exiting:
    wait (bounded) until one is left, so RSS is sampled from the one that serves."""
    deadline = time.monotonic() + bound_s
    while True:
        found = [s.pid for s in stubs_of(server_pid) if f"/{MODEL}/" in s.model_path]
        if len(found) == 1 or time.monotonic() > deadline:
            return found[-1] if found else None
        time.sleep(0.1)


@dataclass
class SoakReport:
    config: dict
    windows: list[Window]
    accepted: float
    answered: float  # completed + cancelled + failed (server counters)
    submitted: float
    rejected: float
    client_lost: list[str]  # ok requests without exactly one final
    client_wrong: list[str]  # bad requests not refused as expected
    unattributed_errors: list[str]
    rss_growth_pct: float | None
    tpot_drift_pct: float | None

    @property
    def server_lost(self) -> float:
        return self.accepted - self.answered


def run_soak(server, cfg: SoakConfig, log=print) -> SoakReport:
    """Drive `server` (a started dynabatch.live.server.TritonServer with the model
    loaded) for cfg.duration_s; see the module doc."""
    metrics_url = server.metrics_url
    stub_pid = model_stub(server.proc.pid)
    base = scrape(metrics_url)
    client = SoakClient(server.grpc_url, cfg)
    windows: list[Window] = []
    # whole windows of load (the idle pauses come on top of duration_s)
    n_windows = max(1, round(cfg.duration_s / cfg.window_s))
    try:
        for index in range(1, n_windows + 1):
            start_seq = client.seq
            client.run_window(time.monotonic() + cfg.window_s)
            drained = client.drain(60)
            m, took = idle_sample(metrics_url, cfg.idle_bound_s)
            with client.lock:
                mine = [r for r in client.requests.values() if int(r.rid[1:]) > start_seq]
            ok = [r for r in mine if r.kind == "ok"]
            w = Window(
                index=index,
                requests=len(mine),
                completed=sum(1 for r in ok if r.finals == 1),
                cancelled=sum(1 for r in mine if r.kind == "cancel"),
                bad=sum(1 for r in mine if r.kind == "bad"),
                p99_ttft_ms=_ms(p99([r.first - r.sent for r in ok if r.first is not None])),
                p99_tpot_ms=_ms(p99([t for r in ok if (t := r.tpot()) is not None])),
                idle_kv_used_blocks=m.get(("nv_trt_llm_kv_cache_block_metrics", "used")),
                idle_active_requests=m.get(("nv_trt_llm_request_metrics", "active")),
                idle_queue=m.get(("dynabatch_queue_length",)),
                idle_after_s=round(took, 2),
                stub_rss_mb=rss_mb(stub_pid) if stub_pid else None,
            )
            windows.append(w)
            log(
                f"soak window {w.index}: {w.requests} requests ({w.cancelled} cancelled, "
                f"{w.bad} bad), P99 TTFT {w.p99_ttft_ms} ms, P99 TPOT {w.p99_tpot_ms} ms; "
                f"idle: KV used {w.idle_kv_used_blocks}, active {w.idle_active_requests} "
                f"(after {w.idle_after_s} s{'' if drained else ', NOT drained'}); "
                f"stub RSS {w.stub_rss_mb and round(w.stub_rss_mb, 1)} MB"
            )
    finally:
        client.close()
    end, _ = idle_sample(metrics_url, cfg.idle_bound_s)

    def delta(outcome: str) -> float:
        key = ("dynabatch_requests_total", outcome)
        return end.get(key, 0) - base.get(key, 0)

    ok = [r for r in client.requests.values() if r.kind == "ok"]
    bad = [r for r in client.requests.values() if r.kind == "bad"]
    rss = [w.stub_rss_mb for w in windows if w.stub_rss_mb]
    tpots = [w.p99_tpot_ms for w in windows]
    return SoakReport(
        config=asdict(cfg),
        windows=windows,
        accepted=delta("accepted"),
        answered=delta("completed") + delta("cancelled") + delta("failed"),
        submitted=delta("submitted"),
        rejected=end.get(("dynabatch_rejected_total",), 0)
        - base.get(("dynabatch_rejected_total",), 0),
        client_lost=[r.rid for r in ok if r.finals != 1 or r.errors or r.tokens != r.output_len],
        client_wrong=[f"{r.rid}: {r.errors}" for r in bad if r.finals != 1 or len(r.errors) != 1],
        unattributed_errors=client.unattributed[:5],
        rss_growth_pct=_pct(rss[-1], rss[1]) if len(rss) >= 3 else None,
        tpot_drift_pct=(
            _pct(tpots[-1], tpots[1]) if len(tpots) >= 3 and tpots[1] and tpots[-1] else None
        ),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _pct(new: float, old: float) -> float:
    return round(100.0 * (new - old) / old, 2)


def format_report(r: SoakReport) -> str:
    idle_kv = sorted({w.idle_kv_used_blocks for w in r.windows})
    idle_active = sorted({w.idle_active_requests for w in r.windows})
    return "\n".join(
        [
            f"soak: {len(r.windows)} windows of {r.config['window_s']:g} s, "
            f"{sum(w.requests for w in r.windows)} requests",
            f"  stub RSS growth, window 2 -> last: {r.rss_growth_pct} %",
            f"  P99 TPOT, last window vs window 2: {r.tpot_drift_pct} %",
            f"  idle moments: KV used blocks {idle_kv}, active requests {idle_active}",
            f"  server counters: submitted {r.submitted:g} = accepted {r.accepted:g} + "
            f"rejected {r.rejected:g}; accepted - (completed + cancelled + failed) = "
            f"{r.server_lost:g} lost",
            f"  client: {len(r.client_lost)} ordinary requests without exactly one final "
            f"response / full output, {len(r.client_wrong)} bad requests not refused once, "
            f"{len(r.unattributed_errors)} unexpected errors",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    from .models import simulated_params
    from .server import TritonServer, build_repository

    p = argparse.ArgumentParser(description="soak: long load through a real tritonserver")
    p.add_argument("--duration-s", type=float, default=600.0)
    p.add_argument("--window-s", type=float, default=60.0)
    p.add_argument("--load-fraction", type=float, default=0.8)
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--sim-time-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--out", type=Path, default=Path("out/soak"))
    a = p.parse_args(argv)
    cfg = SoakConfig(
        duration_s=a.duration_s,
        window_s=a.window_s,
        load_fraction=a.load_fraction,
        max_batch_size=a.max_batch_size,
        sim_time_scale=a.sim_time_scale,
        seed=a.seed,
    )
    root = Path(__file__).resolve().parents[3]
    a.out.mkdir(parents=True, exist_ok=True)
    params = simulated_params(cfg.sim_profile, cfg.sim_time_scale)
    params["max_batch_size"] = str(cfg.max_batch_size)
    repo = build_repository(
        a.out / "models", {MODEL: root / "model_repository" / MODEL}, {MODEL: params}
    )
    with TritonServer(repo, log_path=a.out / "tritonserver.log") as server:
        report = run_soak(server, cfg, log=lambda s: print(s, flush=True))
    (a.out / "soak.json").write_text(
        json.dumps(asdict(report) | {"server_lost": report.server_lost}, indent=1)
    )
    print(format_report(report))
    print(f"wrote {a.out / 'soak.json'}")
    bad = report.server_lost or report.client_lost or report.client_wrong
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

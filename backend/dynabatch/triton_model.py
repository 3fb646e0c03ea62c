"""The Triton Python-backend model: model_repository/<name>/1/model.py subclasses this.

initialize: parse config.pbtxt parameters (ConfigError fails the load), build engine,
controller, gate, ServingCore, metrics, and start the serving loop thread.
execute: validate each request, every row of a batch (errors go to that request only),
and submit one engine request per row; the responses are sent later from the loop
thread through the request's response sender (responses.py), in both configurations:
decoupled (streaming) and not decoupled (one response per request).
finalize: stop the loop, fail what is left with a clear error, shut the engine down.
Engine faults and stalls: the loop fails the requests the engine held and calls
`_recover`, which rebuilds engine + controller (docs/RELIABILITY.md).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

import triton_python_backend_utils as pb_utils

from .config import ModelConfig, load_config, triton_parameters
from .lifeline import GuardedSender, Lifeline, guard_pb_utils, server_alive
from .metrics import TritonMetrics
from .request_mapping import (
    INPUT_NAMES,
    Limits,
    RequestError,
    ResponseOptions,
    is_stop_request,
    request_parameters,
    response_options,
    split_rows,
    to_generation_request,
)
from .responses import ResponseGroup, RowError, RowOutput
from .runtime import build_engine_and_controller, build_runtime
from .serving import ServingLoop, TritonSink
from .stop_words import StopWatcher
from .types import FinishReason, GenerationRequest, RequestState
from .vocab import model_vocab_size

log = logging.getLogger("dynabatch.model")

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _error_code(reason: FinishReason | None) -> int | None:
    """Map why a request ended to a Triton error code (HTTP status / gRPC code)."""
    codes = getattr(pb_utils.TritonError, "UNAVAILABLE", None)
    if codes is None:  # older stubs have no codes
        return None
    if reason == FinishReason.REJECTED:
        return pb_utils.TritonError.UNAVAILABLE
    if reason == FinishReason.CANCELLED:
        return pb_utils.TritonError.CANCELLED
    return pb_utils.TritonError.INTERNAL


def _triton_error(message: str, code: int | None) -> Any:
    return pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)


class _Unavailable(Exception):
    """The model cannot take requests now (shutting down, engine being rebuilt)."""


class _TritonLogHandler(logging.Handler):
    """Route the package's logging into Triton's log (pb_utils.Logger)."""

    def emit(self, record: logging.LogRecord) -> None:
        if not server_alive():  # a log line waits on the server: not on a dead one
            return
        try:
            msg = self.format(record)
            if record.levelno >= logging.ERROR:
                pb_utils.Logger.log_error(msg)
            elif record.levelno >= logging.WARNING:
                pb_utils.Logger.log_warn(msg)
            else:
                pb_utils.Logger.log_info(msg)
        except Exception:
            pass


def _route_logging() -> None:
    root = logging.getLogger("dynabatch")
    if not any(isinstance(h, _TritonLogHandler) for h in root.handlers):
        handler = _TritonLogHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False


def _shutdown_bounded(engine: Any, timeout_s: float) -> None:
    """engine.shutdown() in a daemon thread: a hung engine must not hang Triton."""

    def run() -> None:
        try:
            engine.shutdown()
        except Exception:
            log.exception("engine shutdown failed")

    t = threading.Thread(target=run, name="dynabatch-engine-shutdown", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        log.error("engine shutdown did not finish within %.0f s; leaving it", timeout_s)


FAULT_KINDS = ("raise", "stall")


def _fault_request(params: Mapping[str, Any]) -> dict | None:
    """The test-only `inject_fault` request parameter, checked: kind, after_iterations,
    stall_s. Only ever calls the engine's own inject_fault (no code, no paths)."""
    kind = params.get("inject_fault")
    if kind is None:
        return None
    if kind not in FAULT_KINDS:
        raise RequestError(f"inject_fault must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    out = {"kind": kind}
    for name, cast, hi in (
        ("fault_after_iterations", int, 1_000_000),
        ("fault_stall_s", float, 3600.0),
    ):
        value = params.get(name, 0)
        try:
            value = cast(value)
            if isinstance(params.get(name), bool) or not 0 <= value <= hi:
                raise ValueError
        except (TypeError, ValueError):
            raise RequestError(
                f"request parameter '{name}' must be a number in [0, {hi:g}], "
                f"got {params.get(name)!r}"
            ) from None
        out[name] = value
    return out


def _kv_tokens(engine: Any) -> str:
    cap = engine.kv_capacity
    return str(cap.total_tokens) if cap is not None else "unknown until the first iteration"


def _engine_vocab(engine: Any) -> int:
    """The vocabulary of a real model behind the engine (0 = unknown, no check). The
    simulated engine has none: its profile's vocab_size only shapes its pseudo-tokens,
    and stock clients send ids from any range (TensorRT-LLM's benchmark draws them
    from [0, 2^31), its client pads with 50256)."""
    return int(getattr(engine, "vocab_size", None) or 0)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        _route_logging()
        self.model_name = args.get("model_name", "tensorrt_llm")
        model_config = json.loads(args["model_config"])
        # decoupled: streaming, one response per engine event; not decoupled: unary
        # gRPC/HTTP infer, one response per request (TensorRT-LLM ships both)
        self.decoupled = bool(
            model_config.get("model_transaction_policy", {}).get("decoupled", False)
        )
        self.config: ModelConfig = load_config(triton_parameters(model_config))
        cfg = self.config
        self.lifeline = Lifeline().start()  # the stub never outlives its server
        # engine, controller and core come from the runtime factory (recovery uses it too);
        # the model keeps only the core, so nothing here outlives an engine rebuild
        self.core = build_runtime(cfg).core
        try:
            self.metrics = TritonMetrics(
                guard_pb_utils(pb_utils), self.model_name, args.get("model_version", "1")
            )
            self.limits = Limits(
                max_new_tokens_limit=cfg.max_new_tokens_limit,
                max_prompt_len=cfg.max_prompt_len,
                vocab_size=cfg.vocab_size
                or _engine_vocab(self.core.engine)
                or model_vocab_size(cfg.engine_params.get("gpt_model_path")),
            )
            self.unavailable: str | None = None  # why new requests are refused (fault)
            self.engine_restarts = 0
            self.loop = ServingLoop(
                self.core,
                poll_s=cfg.loop_poll_s,
                cancel_check_s=cfg.cancel_check_s,
                tick_s=cfg.metrics_interval_s,
                on_tick=self.metrics.update,
                watchdog_s=cfg.engine_watchdog_s,
                recover=self._recover,
            )
            self._ids = itertools.count(1)
            self._by_triton_id: dict[str, set[int]] = {}  # for the `stop` input
            self._ids_lock = threading.Lock()
            self.metrics.update(self.core)  # gauges valid before the first request
            self.loop.start()
        except BaseException:
            self.core.engine.shutdown()
            self.lifeline.close()
            raise
        log.info(
            "model %s ready: engine=%s policy=%s max_batch_size=%d kv=%s tokens",
            self.model_name,
            cfg.engine,
            cfg.policy,
            cfg.max_batch_size,
            _kv_tokens(self.core.engine),
        )

    # ---- requests -------------------------------------------------------------------
    def execute(self, requests: list) -> None:
        for request in requests:
            sender = GuardedSender(request.get_response_sender())
            try:
                self._handle(request, sender)
            except RequestError as exc:
                self._reject(
                    sender,
                    str(exc),
                    pb_utils.TritonError.INVALID_ARG
                    if hasattr(pb_utils.TritonError, "INVALID_ARG")
                    else None,
                )
            except _Unavailable as exc:
                self._reject(sender, str(exc), _error_code(FinishReason.REJECTED))
            except Exception as exc:  # never let one request take the model down
                log.exception("request failed before admission")
                self._reject(sender, f"internal error: {exc}", None)
        return None

    def _handle(self, request: Any, sender: Any) -> None:
        tensors = {}
        for tensor in request.inputs():
            if tensor.name() in INPUT_NAMES:
                tensors[tensor.name()] = tensor.as_numpy()
        triton_id = request.request_id() or ""
        if is_stop_request(tensors):
            self._stop(triton_id, sender)
            return
        params = request_parameters(request.parameters())
        # every row is checked before any is queued: a bad row refuses the whole request
        rows = split_rows(tensors)
        checked = []
        for index, row in enumerate(rows):
            try:
                checked.append(self._check_row(row, params))
            except RequestError as exc:
                raise RequestError(exc if len(rows) == 1 else f"row {index}: {exc}") from None
        fault = _fault_request(params)
        if not self.loop.alive:
            raise _Unavailable("the model is shutting down")
        if self.unavailable is not None:
            raise _Unavailable(self.unavailable)
        if fault is not None:
            self._inject(fault)
        group = ResponseGroup(
            sender,
            len(checked),
            decoupled=self.decoupled,
            final_flag=_FINAL,
            build=self._build,
            build_error=self._error,
        )
        rids = {req.request_id for req, _ in checked}
        if triton_id:
            with self._ids_lock:
                self._by_triton_id.setdefault(triton_id, set()).update(rids)

        def forget(sink: TritonSink) -> None:
            if triton_id:
                with self._ids_lock:
                    live = self._by_triton_id.get(triton_id)
                    if live is not None:
                        live.discard(sink.request_id)
                        if not live:
                            del self._by_triton_id[triton_id]

        for index, (req, options) in enumerate(checked):
            streaming = req.streaming  # what the client asked for
            prefix = None if (streaming or options.exclude_input) else list(req.prompt_ids)
            if options.stop_words:
                # the engine must hand over every token for a stop word to end it early
                req.streaming = True
            sink = TritonSink(
                group.row(index),
                streaming=streaming,
                final_flag=_FINAL,
                make_response=self._row_output(req, options),
                make_final=self._row_final(req, options, len(prefix or ()), streaming),
                make_error=RowError,
                prefix=prefix,
                on_done=forget,
                watch=self._stop_words(req, options),
            )
            self.loop.submit(req, sink)

    def _check_row(
        self, tensors: dict, params: Mapping[str, Any]
    ) -> tuple[GenerationRequest, ResponseOptions]:
        """One row, validated: its engine request and its response options."""
        rid = next(self._ids)
        req = to_generation_request(
            tensors, params, request_id=rid, limits=self.limits, arrival_time=self.core.engine.now()
        )
        if req.streaming and not self.decoupled:
            raise RequestError(
                "streaming: only the decoupled configuration streams; this model "
                f"('{self.model_name}') is not decoupled (send streaming=false)"
            )
        # tensors were validated by to_generation_request; what depends on the engine
        # (the KV pool) is the core's one check, the same the benchmark uses
        error = self.core.admission_error(req)  # e.g. prompt + output beyond the KV cache
        if error is not None:
            raise RequestError(error)
        return req, response_options(tensors, self.config.exclude_input_in_output)

    def _stop_words(self, req: GenerationRequest, options: ResponseOptions):
        """The row's stop-word watch (loop thread): on a match the output ends after the
        stop sequence and the request is stopped, which frees its KV blocks."""
        if not options.stop_words:
            return None
        watcher = StopWatcher(options.stop_words)

        def watch(tokens: list[int]) -> list[int]:
            was_hit = watcher.hit
            kept = watcher.feed(tokens)
            if watcher.hit and not was_hit:
                self.loop.stop_request(req.request_id)
            return kept

        return watch

    @staticmethod
    def _row_output(req: GenerationRequest, options: ResponseOptions):
        """make_response of a row's sink: a streaming chunk."""
        pad = req.pad_id if req.pad_id is not None else (req.end_id or 0)

        def make(tokens: list[int]) -> RowOutput:
            return RowOutput(list(tokens), options, req.prompt_len, len(tokens), pad)

        return make

    def _row_final(
        self, req: GenerationRequest, options: ResponseOptions, prefix_len: int, streaming: bool
    ):
        """make_final of a row's sink: the last response, with what only the end knows."""
        pad = req.pad_id if req.pad_id is not None else (req.end_id or 0)
        wants_extras = options.return_perf_metrics or options.return_num_output_tokens

        def make(tokens: list[int], state: RequestState | None) -> RowOutput | None:
            if state is not None:
                self.metrics.observe_request(req.prompt_len, state.generated)
            if streaming and not tokens and not wants_extras:
                return None  # the final flag alone
            perf = self._perf(req, state) if options.return_perf_metrics else {}
            generated = len(tokens) - prefix_len
            return RowOutput(list(tokens), options, req.prompt_len, generated, pad, perf)

        return make

    def _perf(self, req: GenerationRequest, state: RequestState | None) -> dict[str, float]:
        """return_perf_metrics: the request's KV blocks (no block reuse here) and its times
        in the engine's clock, in ns (the simulated engine's clock runs at sim_time_scale)."""
        cap = self.core.engine.kv_capacity  # None until a TensorRT-LLM engine's first step
        generated = state.generated if state is not None else 0
        blocks = -(-(req.prompt_len + generated) // max(1, cap.tokens_per_block)) if cap else 0

        def ns(t: float | None) -> int:
            return int(round((t if t is not None else 0.0) * 1e9))

        return {
            "kv_cache_alloc_new_blocks": blocks,
            "kv_cache_reused_blocks": 0,
            "kv_cache_alloc_total_blocks": blocks,
            "arrival_time_ns": ns(req.arrival_time),
            "first_scheduled_time_ns": ns(state.admitted_time if state else None),
            "first_token_time_ns": ns(state.first_token_time if state else None),
            "last_token_time_ns": ns(state.finish_time if state else None),
            "acceptance_rate": 0.0,
            "total_accepted_draft_tokens": 0,
            "total_draft_tokens": 0,
        }

    def _inject(self, fault: dict) -> None:
        """Test only (enable_fault_injection): arm the simulated engine's fault hook."""
        if not self.config.enable_fault_injection:
            raise RequestError(
                "inject_fault: fault injection is disabled "
                "(model parameter enable_fault_injection=false)"
            )
        engine = self.core.engine
        if not hasattr(engine, "inject_fault"):
            raise RequestError(f"inject_fault: engine '{self.config.engine}' has no fault hook")
        log.warning("test fault injected: %s", fault)
        engine.inject_fault(
            fault["kind"],
            after_iterations=fault["fault_after_iterations"],
            stall_s=fault["fault_stall_s"],
        )

    def _recover(self, reason: str) -> None:
        """Loop thread, after a fault: the core has failed every request the engine held.
        Rebuild engine and controller (as at load) so serving goes on; the old engine is
        shut down with a bound. Raises when the rebuild fails (the loop retries later)."""
        cfg = self.config
        _shutdown_bounded(self.core.engine, 5.0)
        if not cfg.engine_recovery:
            self.unavailable = (
                f"engine unavailable after a fault ({reason}); "
                "engine_recovery=false: reload the model"
            )
            return
        # requests that arrive meanwhile wait in the core's inbox and go to the new engine
        try:
            engine, controller = build_engine_and_controller(cfg)
        except Exception as exc:
            self.unavailable = (
                f"engine unavailable: rebuilding it after a fault failed ({exc}); retrying"
            )
            raise
        self.core.replace_engine(engine, controller)
        self.engine_restarts += 1
        self.unavailable = None
        log.warning("engine rebuilt after a fault (%d so far): %s", self.engine_restarts, reason)

    def _stop(self, triton_id: str, sender: Any) -> None:
        """`stop`=true ends the in-flight request that has the same request id."""
        if not triton_id:
            raise RequestError("stop=true needs the request id of the request to stop")
        with self._ids_lock:
            rids = sorted(self._by_triton_id.get(triton_id, ()))
        if not rids:
            raise RequestError(f"stop: no request with id '{triton_id}' is queued or running")
        for rid in rids:  # every row of that request
            self.loop.stop_request(rid)
        if self.decoupled:
            sender.send(flags=_FINAL)
        else:  # a unary request needs one response
            sender.send(pb_utils.InferenceResponse(output_tensors=[]), flags=_FINAL)

    @staticmethod
    def _build(tensors: Mapping[str, Any]) -> Any:
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(name, value) for name, value in tensors.items()]
        )

    @staticmethod
    def _error(message: str, reason: FinishReason | None) -> Any:
        return pb_utils.InferenceResponse(error=_triton_error(message, _error_code(reason)))

    def _reject(self, sender: Any, message: str, code: int | None) -> None:
        self.metrics.extra_rejected += 1
        try:
            sender.send(
                pb_utils.InferenceResponse(error=_triton_error(message, code)), flags=_FINAL
            )
        except Exception as exc:
            log.info("rejection not delivered (%s): %s", exc, message)

    def finalize(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.close("the model is being unloaded (server shutting down): request aborted")
        core = getattr(self, "core", None)  # the model keeps only the core (runtime factory)
        if core is not None:
            _shutdown_bounded(core.engine, 10.0)
        lifeline = getattr(self, "lifeline", None)
        if lifeline is not None:
            lifeline.close()

"""`tensorrt_llm_bls` model: text in, text out in one Python model that tokenizes, calls
`tensorrt_llm` through BLS (streaming or not) and detokenizes incrementally.

Each request runs on its own worker thread (the model is decoupled), so a long
generation never blocks the next request's admission. The request's parameters
(`priority`, and any other per-request parameter) are passed on to `tensorrt_llm`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dynabatch.text.bls import BlsRequest, StopStrings, parse_bls_request
from dynabatch.text.processing import TextRequestError
from dynabatch.text.tokenizer import IncrementalDecoder, TextTokenizer
from dynabatch.text.triton_common import flag, model_parameters

try:
    import triton_python_backend_utils as pb_utils
except ImportError:
    pb_utils = None

log = logging.getLogger("dynabatch.bls")

INPUTS = (
    "text_input",
    "max_tokens",
    "stream",
    "stop_words",
    "num_return_sequences",
    "return_num_input_tokens",
    "return_num_output_tokens",
    "end_id",
    "pad_id",
    "top_k",
    "top_p",
    "temperature",
    "repetition_penalty",
    "min_tokens",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "beam_width",
)


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        params = model_parameters(args)
        self.tokenizer = TextTokenizer.load(params.get("tokenizer_dir", ""))
        self.engine_model = params.get("tensorrt_llm_model_name") or "tensorrt_llm"
        self.skip_special_tokens = flag(params, "skip_special_tokens", True)
        self.add_special_tokens = flag(params, "add_special_tokens", True)
        workers = int(params.get("max_concurrent_requests") or 256)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bls")
        self._ids = itertools.count(1)
        self._prefix = f"bls-{os.getpid()}-"

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            self.pool.submit(self._serve, request)
        return None

    def finalize(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _serve(self, request: Any) -> None:
        sender = request.get_response_sender()
        try:
            arrays = {t.name(): t.as_numpy() for t in request.inputs() if t.name() in INPUTS}
            bls = parse_bls_request(self.tokenizer, arrays, self.add_special_tokens)
        except TextRequestError as e:
            _send_error(sender, f"tensorrt_llm_bls: {e}", invalid=True)
            return
        try:
            self._generate(request, sender, bls)
        except Exception as e:  # the client always gets its one final response
            log.exception("tensorrt_llm_bls request failed")
            _send_error(sender, f"tensorrt_llm_bls: {e}", invalid=False)

    def _generate(self, request: Any, sender: Any, bls: BlsRequest) -> None:
        engine_id = f"{self._prefix}{next(self._ids)}"
        end_id = int(bls.forwarded.get("end_id", [[self.tokenizer.eos_id]])[0][0])
        pad_id = int(bls.forwarded.get("pad_id", [[self.tokenizer.pad_id]])[0][0])
        inputs = bls.engine_inputs(end_id, pad_id)
        upstream = pb_utils.InferenceRequest(
            model_name=self.engine_model,
            inputs=[pb_utils.Tensor(k, v) for k, v in inputs.items()],
            requested_output_names=["output_ids", "sequence_length"],
            request_id=engine_id,
            parameters=json.loads(request.parameters() or "{}"),
        )
        decoder = IncrementalDecoder(self.tokenizer, self.skip_special_tokens)
        stops = StopStrings(bls.stop_words)
        generated = 0
        reported = 0  # num_output_tokens per response: the tokens since the last one

        def respond(text: str, final: bool) -> None:
            nonlocal reported
            sender.send(self._response(text, bls, generated - reported), flags=_flags(final))
            reported = generated

        stopped_upstream = False
        # The iterator ends after tensorrt_llm's final response.
        for response in upstream.exec(decoupled=True):
            if stopped_upstream:
                # drain what tensorrt_llm still sends for the stopped request; its tokens
                # were generated, so they count in num_output_tokens
                generated += 0 if response.has_error() else len(_tokens(response))
                continue
            if response.has_error():
                _send_error(sender, response.error().message(), invalid=False)
                return
            tokens = _tokens(response)
            generated += len(tokens)
            text = stops.feed(decoder.add(tokens))
            if stops.stopped or sender.is_cancelled():
                self._stop_upstream(engine_id)
                stopped_upstream = True
            if bls.stream and text and not sender.is_cancelled():
                respond(text, final=False)
        if not stops.stopped:
            tail = stops.feed(decoder.add([], final=True), final=True)
        else:
            tail = ""
        if sender.is_cancelled():
            return
        if bls.stream:
            respond(tail, final=True)
        else:
            full = stops.text[: stops.sent]
            respond(full, final=True)

    def _stop_upstream(self, engine_id: str) -> None:
        """`stop`=true with the same request id ends the running request and frees its
        KV blocks (BLS in Triton 2.51 has no cancel on a response iterator)."""
        stop = pb_utils.InferenceRequest(
            model_name=self.engine_model,
            inputs=[
                pb_utils.Tensor("input_ids", np.array([[0]], np.int32)),
                pb_utils.Tensor("request_output_len", np.array([[1]], np.int32)),
                pb_utils.Tensor("stop", np.array([[True]], bool)),
            ],
            requested_output_names=["output_ids"],
            request_id=engine_id,
        )
        for response in stop.exec(decoupled=True):
            if response.has_error():  # already finished: nothing left to stop
                log.debug("stop %s: %s", engine_id, response.error().message())

    def _response(self, text: str, bls: BlsRequest, new_tokens: int) -> Any:
        tensors = [pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], object))]
        if bls.return_num_input_tokens:
            n_in = np.array([[len(bls.prompt_ids)]], np.int32)
            tensors.append(pb_utils.Tensor("num_input_tokens", n_in))
        if bls.return_num_output_tokens:
            tensors.append(pb_utils.Tensor("num_output_tokens", np.array([[new_tokens]], np.int32)))
        return pb_utils.InferenceResponse(output_tensors=tensors)


def _tokens(response: Any) -> list[int]:
    ids = pb_utils.get_output_tensor_by_name(response, "output_ids")
    if ids is None:
        return []
    arr = ids.as_numpy().reshape(-1)
    lengths = pb_utils.get_output_tensor_by_name(response, "sequence_length")
    n = int(lengths.as_numpy().reshape(-1)[0]) if lengths is not None else arr.size
    return arr[: max(0, min(n, arr.size))].tolist()


def _flags(final: bool) -> int:
    return pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0


def _send_error(sender: Any, message: str, invalid: bool) -> None:
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None) if invalid else None
    error = (
        pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    )
    sender.send(pb_utils.InferenceResponse(error=error), flags=_flags(True))

"""bare_stream: stream `request_output_len` one-token responses per request, no work.

Parameter `mode`:
- "inline" (the ceiling): execute() sends all of a request's responses in a tight
  loop; nothing else runs, so this is the most a Python-backend model can stream;
- "thread": a worker thread round-robins over the live requests, one response each
  per round, like an in-flight batcher with an infinitely fast engine (measured
  ~15-20 % below "inline" on the 2-core dev machine: the thread hand-off costs).
"""

import queue
import threading

import numpy as np
import triton_python_backend_utils as pb_utils

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _response(i):
    return pb_utils.InferenceResponse(
        output_tensors=[
            pb_utils.Tensor("output_ids", np.array([[i % 32000]], dtype=np.int32)),
            pb_utils.Tensor("sequence_length", np.array([1], dtype=np.int32)),
        ]
    )


class TritonPythonModel:
    def initialize(self, args):
        import json

        params = json.loads(args["model_config"]).get("parameters", {})
        # "inline": send every response from execute() (no thread hand-off at all).
        self._inline = params.get("mode", {}).get("string_value", "thread") == "inline"
        self._inbox = queue.Queue()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, daemon=True)
        self._worker.start()

    def execute(self, requests):
        for request in requests:
            n = pb_utils.get_input_tensor_by_name(request, "request_output_len")
            count = max(1, int(n.as_numpy().reshape(-1)[0])) if n is not None else 1
            if self._inline:
                sender = request.get_response_sender()
                for i in range(count):
                    sender.send(_response(i), flags=_FINAL if i + 1 == count else 0)
            else:
                self._inbox.put([request.get_response_sender(), count, 0])
        return None

    def _run(self):
        live = []
        while not self._stop.is_set():
            if not live:
                try:
                    live.append(self._inbox.get(timeout=0.1))
                except queue.Empty:
                    continue
            while not self._inbox.empty():
                live.append(self._inbox.get_nowait())
            for item in live:
                sender, count, sent = item
                item[2] = sent + 1
                sender.send(_response(sent), flags=_FINAL if item[2] >= count else 0)
            live = [item for item in live if item[2] < item[1]]

    def finalize(self):
        self._stop.set()
        self._worker.join(timeout=2)

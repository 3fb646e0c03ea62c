"""`preprocessing` model: QUERY text -> INPUT_ID tokens, TensorRT-LLM's names and shapes."""

from __future__ import annotations

from typing import Any

import numpy as np

from dynabatch.text.processing import (
    EncodedPrompt,
    TextRequestError,
    encode_prompt,
    padded_ids,
    text_of,
    words_list,
)
from dynabatch.text.tokenizer import TextTokenizer
from dynabatch.text.triton_common import (
    error_response,
    flag,
    model_parameters,
    optional_array,
    string_rows,
)

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (docs, tests of the pure parts)
    pb_utils = None


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        params = model_parameters(args)
        self.tokenizer = TextTokenizer.load(params.get("tokenizer_dir", ""))
        self.add_special_tokens = flag(params, "add_special_tokens", True)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except TextRequestError as e:
                responses.append(error_response(pb_utils, f"preprocessing: {e}"))
        return responses

    def _one(self, request: Any) -> Any:
        query = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy()
        batch = query.shape[0]
        out_len = pb_utils.get_input_tensor_by_name(request, "REQUEST_OUTPUT_LEN").as_numpy()
        out_len = out_len.reshape(batch, -1)[:, 0]
        prompts: list[EncodedPrompt] = []
        for row in range(batch):
            text = text_of(query.reshape(batch, -1)[row, 0])
            prompts.append(
                encode_prompt(self.tokenizer, text, int(out_len[row]), self.add_special_tokens)
            )
        returns = optional_array(pb_utils, request, "NUM_RETURN_SEQUENCES")
        if returns is not None and (returns != 1).any():
            raise TextRequestError(
                f"num_return_sequences must be 1, got {int(returns.reshape(-1)[0])}"
            )
        end_id = _per_row(optional_array(pb_utils, request, "END_ID"), batch, self.tokenizer.eos_id)
        pad_id = _per_row(optional_array(pb_utils, request, "PAD_ID"), batch, self.tokenizer.pad_id)
        ids, lengths = padded_ids(prompts, int(pad_id[0, 0]))
        bad = string_rows(optional_array(pb_utils, request, "BAD_WORDS_DICT"), batch)
        stop = string_rows(optional_array(pb_utils, request, "STOP_WORDS_DICT"), batch)
        tensors = {
            "INPUT_ID": ids,
            "REQUEST_INPUT_LEN": lengths,
            "BAD_WORDS_IDS": words_list(self.tokenizer, bad),
            "STOP_WORDS_IDS": words_list(self.tokenizer, stop),
            "REQUEST_OUTPUT_LEN": np.array([[p.request_output_len] for p in prompts], np.int32),
            "OUT_END_ID": end_id,
            "OUT_PAD_ID": pad_id,
        }
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(k, v) for k, v in tensors.items()]
        )


def _per_row(value: np.ndarray | None, batch: int, default: int) -> np.ndarray:
    if value is None:
        return np.full((batch, 1), default, np.int32)
    return value.reshape(batch, -1)[:, :1].astype(np.int32)

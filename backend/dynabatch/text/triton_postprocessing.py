"""`postprocessing` model: TOKENS_BATCH + SEQUENCE_LENGTH -> OUTPUT text (per response;
in a streamed ensemble each response is decoded on its own, as TensorRT-LLM's does)."""

from __future__ import annotations

from typing import Any

from dynabatch.text.processing import decode_batch, output_counts
from dynabatch.text.tokenizer import TextTokenizer
from dynabatch.text.triton_common import flag, model_parameters

try:
    import triton_python_backend_utils as pb_utils
except ImportError:
    pb_utils = None


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        params = model_parameters(args)
        self.tokenizer = TextTokenizer.load(params.get("tokenizer_dir", ""))
        self.skip_special_tokens = flag(params, "skip_special_tokens", True)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
            text = decode_batch(self.tokenizer, tokens, lengths, self.skip_special_tokens)
            # flat [batch x beams], as TensorRT-LLM's postprocessing sends it: clients
            # (end_to_end_grpc_client.py) read text_output[0] as one string
            text = text.reshape(-1)
            outputs = [
                pb_utils.Tensor("OUTPUT", text),
                pb_utils.Tensor("NUM_OUTPUT_TOKENS", output_counts(tokens, lengths)),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses

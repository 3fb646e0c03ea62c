"""Small helpers the text models share: parameters, optional tensors, error responses."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

TRUE_WORDS = ("1", "true", "yes", "on")


def model_parameters(args: dict[str, Any]) -> dict[str, str]:
    """config.pbtxt parameters -> {key: string_value}; "${...}" placeholders count as unset."""
    params = json.loads(args["model_config"]).get("parameters", {})
    out = {}
    for key, value in params.items():
        text = str(value.get("string_value", ""))
        out[key] = "" if text.startswith("${") else text
    return out


def flag(params: dict[str, str], key: str, default: bool) -> bool:
    value = params.get(key, "").strip().lower()
    return default if not value else value in TRUE_WORDS


def optional_array(pb_utils: Any, request: Any, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def error_response(pb_utils: Any, message: str) -> Any:
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
        if hasattr(pb_utils.TritonError, "INVALID_ARG")
        else pb_utils.TritonError(message)
    )


def string_rows(array: np.ndarray | None, batch: int) -> list[list[str]]:
    """A [batch, -1] STRING tensor -> per-row lists of str (missing tensor: empty rows)."""
    if array is None:
        return [[] for _ in range(batch)]
    rows = array.reshape(batch, -1)
    return [[v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in row] for row in rows]

"""Stand-in for `tensorrt_llm.executor` (only the per-request error type)."""


class RequestError(RuntimeError):
    """The error raised when a request failed (tensorrt_llm/executor/utils.py)."""

"""Stand-in for `tensorrt_llm.bindings` (only the `executor` submodule is mirrored)."""

from . import executor  # noqa: F401

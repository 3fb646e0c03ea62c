"""Stand-in for the `tensorrt_llm` package, for tests only (never imported by backend/).

Mirrors the public names the dynabatch adapters use: `tensorrt_llm.LLM`,
`tensorrt_llm.SamplingParams`, `tensorrt_llm.llmapi.{KvCacheConfig, SchedulerConfig,
CapacitySchedulerPolicy}`, `tensorrt_llm.bindings.executor.*`. See llmapi/llm.py and
bindings/executor.py for what was checked against TensorRT-LLM's sources.
"""

from . import bindings  # noqa: F401  (the real package imports it too)
from .llmapi.llm import LLM, RequestOutput  # noqa: F401
from .sampling_params import SamplingParams  # noqa: F401

__version__ = "1.2.0-stand-in"

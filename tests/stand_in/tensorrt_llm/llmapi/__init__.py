"""Stand-in for `tensorrt_llm.llmapi`."""

from ..sampling_params import SamplingParams  # noqa: F401
from .llm import LLM, RequestOutput  # noqa: F401
from .llm_args import (  # noqa: F401
    CapacitySchedulerPolicy,
    ContextChunkingPolicy,
    KvCacheConfig,
    SchedulerConfig,
    ValidationError,
    WaitingQueuePolicy,
)

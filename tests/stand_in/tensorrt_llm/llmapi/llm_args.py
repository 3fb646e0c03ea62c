"""Stand-in for the pydantic config models of tensorrt_llm/llmapi/llm_args.py.

Checked: `class CapacitySchedulerPolicy(StrEnum)` MAX_UTILIZATION / GUARANTEED_NO_EVICT /
STATIC_BATCH (string values equal to the names); `SchedulerConfig(StrictBaseModel)`
capacity_scheduler_policy=GUARANTEED_NO_EVICT, context_chunking_policy=None,
dynamic_batch_config=None; `KvCacheConfig(StrictBaseModel)` enable_block_reuse=True,
max_tokens=None, free_gpu_memory_fraction=0.9 (0..1), tokens_per_block=32, ...;
StrictBaseModel forbids unknown fields (pydantic ValidationError, a ValueError).
"""

from __future__ import annotations

import enum
from typing import Any, Optional


class ValidationError(ValueError):
    """What pydantic raises (pydantic_core.ValidationError subclasses ValueError)."""


class CapacitySchedulerPolicy(str, enum.Enum):
    MAX_UTILIZATION = "MAX_UTILIZATION"
    GUARANTEED_NO_EVICT = "GUARANTEED_NO_EVICT"
    STATIC_BATCH = "STATIC_BATCH"


class WaitingQueuePolicy(str, enum.Enum):
    FCFS = "fcfs"


class ContextChunkingPolicy(str, enum.Enum):
    FIRST_COME_FIRST_SERVED = "FIRST_COME_FIRST_SERVED"
    EQUAL_PROGRESS = "EQUAL_PROGRESS"


class _Strict:
    _FIELDS: dict[str, Any] = {}

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(self._FIELDS)
        if unknown:
            raise ValidationError(
                f"{type(self).__name__}: extra inputs are not permitted: "
                f"{', '.join(sorted(unknown))}"
            )
        values = dict(self._FIELDS)
        values.update(kwargs)
        for k, v in values.items():
            setattr(self, k, self._validate(k, v))

    def _validate(self, name: str, value: Any) -> Any:
        return value


class SchedulerConfig(_Strict):
    _FIELDS = dict(
        capacity_scheduler_policy=CapacitySchedulerPolicy.GUARANTEED_NO_EVICT,
        context_chunking_policy=None,
        dynamic_batch_config=None,
        waiting_queue_policy=WaitingQueuePolicy.FCFS,
    )

    def _validate(self, name: str, value: Any) -> Any:
        if name == "capacity_scheduler_policy":
            try:
                return CapacitySchedulerPolicy(value)
            except ValueError:
                raise ValidationError(
                    f"capacity_scheduler_policy: invalid value {value!r}"
                ) from None
        if name == "waiting_queue_policy":
            try:
                return WaitingQueuePolicy(value)
            except ValueError:
                raise ValidationError(f"waiting_queue_policy: invalid value {value!r}") from None
        return value


class KvCacheConfig(_Strict):
    _FIELDS = dict(
        enable_block_reuse=True,
        max_tokens=None,
        max_attention_window=None,
        sink_token_length=None,
        free_gpu_memory_fraction=0.9,
        host_cache_size=None,
        onboard_blocks=True,
        cross_kv_cache_fraction=None,
        secondary_offload_min_priority=None,
        event_buffer_max_size=0,
        enable_partial_reuse=True,
        copy_on_partial_reuse=True,
        use_uvm=False,
        max_gpu_total_bytes=0,
        dtype="auto",
        tokens_per_block=32,
    )

    def _validate(self, name: str, value: Any) -> Any:
        if name == "free_gpu_memory_fraction" and value is not None and not 0 <= value <= 1:
            raise ValidationError("free_gpu_memory_fraction must be in [0, 1]")
        if name == "max_tokens" and value is not None and not isinstance(value, int):
            raise ValidationError("max_tokens must be an int")
        if name == "enable_block_reuse" and not isinstance(value, bool):
            raise ValidationError("enable_block_reuse must be a bool")
        return value


def as_model(cls: type, value: Optional[Any], field: str) -> Any:
    if value is None:
        return cls()
    if isinstance(value, dict):
        return cls(**value)
    if not isinstance(value, cls):
        raise ValidationError(
            f"{field}: expected {cls.__name__} or dict, got {type(value).__name__}"
        )
    return value

"""`trtllm_tuner`: TensorRT-LLM's DynamicBatchTuner, open loop on requested lengths.

What TensorRT-LLM does (NVIDIA/TensorRT-LLM, read with the search tool):
- cpp/tensorrt_llm/executor/executorImpl.cpp: every executor-loop iteration, for each
  active request, `mDynamicBatchTuner->updateStats(req->mPromptLen, req->mMaxNewTokens)`;
  then in forwardAsync the averages are cast to int and
  `getRuntimeBatchSize(mModel->getMaxCapacityBatchSize(avgIn, avgOut))` becomes the
  runtime batch size, which TrtGptModelInflightBatching::setRuntimeBatchSize caps at
  the engine's max batch size.
- cpp/tensorrt_llm/executor/dynamicBatchTuner.cpp: updateStats keeps a moving window
  (DynamicBatchConfig::kDefaultDynamicBatchMovingAverageWindow = 128 samples) of input
  lengths and of *requested* output lengths; getRuntimeBatchSize walks the batch-size
  table {(144,128), (336,256), (672,512), (832,768), (1280,1024), (1664,1536)}
  (executor/dynamicBatchConfig.cpp, kDefaultBatchSizeTable) and returns the second
  value of the first entry whose first value exceeds the capacity; above the table it
  rounds down to a multiple of 512 when within 128 of it (kBatchSizeFallback*).
- cpp/tensorrt_llm/batch_manager/kvCacheManager.cpp: getMaxCapacityBatchSize =
  primary blocks / ceilDiv(avgIn + avgOut, tokensPerBlock) (beam width 1, no sink
  tokens, attention window >= sequence).
It never looks at what the cache actually holds: it is open loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from itertools import islice
from typing import Any

from ..types import ControlInput
from .base import LimitDecision
from .common import SingleBound
from .kv_capacity import CapacityTracker, unknown_decision
from .registry import Bounds, params_of

BATCH_SIZE_TABLE = ((144, 128), (336, 256), (672, 512), (832, 768), (1280, 1024), (1664, 1536))
FALLBACK_GRANULARITY = 512
FALLBACK_THRESHOLD = 128


def runtime_batch_size(
    max_capacity_batch_size: int, table: tuple[tuple[int, int], ...] = BATCH_SIZE_TABLE
) -> int:
    """DynamicBatchTuner::getRuntimeBatchSize."""
    for limit, batch in table:
        if max_capacity_batch_size < limit:
            return batch
    threshold = max_capacity_batch_size // FALLBACK_GRANULARITY * FALLBACK_GRANULARITY
    if max_capacity_batch_size < threshold + FALLBACK_THRESHOLD:
        return threshold
    return max_capacity_batch_size


class TrtllmTunerController(SingleBound):
    name = "trtllm_tuner"
    bound = "tuner"

    def __init__(self, *, window: int, lower: int, upper: int) -> None:
        # primary blocks and tokens per block: the engine's latest report
        self.kv = CapacityTracker()
        self.window = window
        self.lower, self.upper = lower, upper
        self._in: deque[int] = deque()
        self._out: deque[int] = deque()
        self._in_sum = 0
        self._out_sum = 0
        self.capacity = 0  # getMaxCapacityBatchSize at the last update (0 = no data yet)
        self.b = lower  # KV capacity unknown (kv_capacity.py)

    def update(self, sample: ControlInput) -> int:
        known = self.kv.current is not None
        kv = self.kv.refresh(sample.stats)
        if kv is None:
            return self.b
        if not known:
            self.b = self.upper  # TensorRT-LLM's batch before the tuner has data
        running = sample.running
        if running:
            # Only the newest `window` samples survive an iteration, so push just those.
            n = min(len(running), self.window)
            newest = list(islice(reversed(running.values()), n))
            for state in reversed(newest):  # oldest first, as the executor iterates
                self._push(state.prompt_len, state.max_new_tokens)
        if self._in:
            avg_in = int(self._in_sum / len(self._in))  # static_cast<SizeType32>
            avg_out = int(self._out_sum / len(self._out))
            blocks_per_seq = -(-(avg_in + avg_out) // kv.tokens_per_block)
            if blocks_per_seq > 0:
                self.capacity = kv.total_blocks // blocks_per_seq
                b = min(runtime_batch_size(self.capacity), self.upper)
                self.b = max(b, self.lower)
        return self.b

    @property
    def decision(self) -> LimitDecision:
        if self.kv.current is None:
            return unknown_decision(self.b)
        return super().decision

    def _push(self, prompt_len: int, max_new: int) -> None:
        if len(self._in) >= self.window:
            self._in_sum -= self._in.popleft()
            self._out_sum -= self._out.popleft()
        self._in.append(prompt_len)
        self._out.append(max_new)
        self._in_sum += prompt_len
        self._out_sum += max_new


@params_of("tuner_window")
def build(p: Mapping[str, Any], b: Bounds) -> TrtllmTunerController:
    return TrtllmTunerController(window=p["tuner_window"], lower=b.lower, upper=b.upper)

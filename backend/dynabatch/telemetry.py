"""GPU telemetry through NVML (`pynvml`, from the nvidia-ml-py package).

`GpuTelemetry.sample()` returns the device's memory use and utilisation, or None when
NVML is unavailable (no driver, no GPU, package missing). In that case it logs once
and never tries again, so CPU machines pay nothing. The serving loop exports a sample
as metrics (`GpuSample.metrics()`) and can hand it to controllers; no controller
depends on it.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("dynabatch.telemetry")


@dataclass(frozen=True)
class GpuSample:
    device_index: int
    memory_used_bytes: int
    memory_total_bytes: int
    gpu_utilization_pct: float  # share of the last sample period a kernel ran
    memory_utilization_pct: float  # share of the period device memory was read/written

    @property
    def memory_used_fraction(self) -> float:
        return self.memory_used_bytes / self.memory_total_bytes if self.memory_total_bytes else 0.0

    def metrics(self) -> dict[str, float]:
        """Gauge name -> value, for the model's MetricFamily."""
        return {
            "gpu_memory_used_bytes": float(self.memory_used_bytes),
            "gpu_memory_total_bytes": float(self.memory_total_bytes),
            "gpu_utilization_pct": float(self.gpu_utilization_pct),
            "gpu_memory_utilization_pct": float(self.memory_utilization_pct),
        }


class GpuTelemetry:
    """One GPU's NVML readings. `nvml` injects a pynvml-like module (tests)."""

    def __init__(self, device_index: int = 0, nvml: Any = None) -> None:
        self.device_index = device_index
        self._nvml = nvml
        self._handle: Any = None
        self._disabled = False
        self._warned_sample = False

    @property
    def available(self) -> bool:
        return self._start()

    def _start(self) -> bool:
        if self._handle is not None:
            return True
        if self._disabled:
            return False
        try:
            if self._nvml is None:
                self._nvml = importlib.import_module("pynvml")
            self._nvml.nvmlInit()
            self._handle = self._nvml.nvmlDeviceGetHandleByIndex(self.device_index)
            return True
        except Exception as exc:  # NVMLError (no driver / GPU), ImportError, OSError
            self._disabled = True
            log.info("GPU telemetry off: NVML unavailable (%s); GPU metrics are not exported", exc)
            return False

    def sample(self) -> GpuSample | None:
        if not self._start():
            return None
        try:
            mem = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
        except Exception as exc:  # a transient NVML error: skip this sample
            if not self._warned_sample:
                self._warned_sample = True
                log.warning("GPU telemetry: NVML read failed (%s); skipping samples", exc)
            return None
        return GpuSample(
            self.device_index, int(mem.used), int(mem.total), float(util.gpu), float(util.memory)
        )

    def close(self) -> None:
        if self._handle is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._handle = None
            self._disabled = True

"""GpuTelemetry: quiet without NVML, correct readings with a (fake) NVML."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from dynabatch.telemetry import GpuSample, GpuTelemetry


class NVMLError(Exception):
    pass


class FakeNvml:
    def __init__(self, fail_init=False, fail_read=False):
        self.fail_init, self.fail_read = fail_init, fail_read
        self.calls = []

    def nvmlInit(self):
        self.calls.append("init")
        if self.fail_init:
            raise NVMLError("NVML Shared Library Not Found")

    def nvmlDeviceGetHandleByIndex(self, i):
        self.calls.append(("handle", i))
        return f"dev{i}"

    def nvmlDeviceGetMemoryInfo(self, h):
        if self.fail_read:
            raise NVMLError("GPU is lost")
        return SimpleNamespace(total=80 * 2**30, used=60 * 2**30, free=20 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=93, memory=41)

    def nvmlShutdown(self):
        self.calls.append("shutdown")


def test_without_nvml_logs_once_and_returns_none(caplog):
    nvml = FakeNvml(fail_init=True)
    tel = GpuTelemetry(nvml=nvml)
    with caplog.at_level(logging.INFO, logger="dynabatch.telemetry"):
        assert tel.sample() is None
        assert tel.sample() is None
        assert tel.available is False
    assert nvml.calls == ["init"]  # never retried
    assert len([r for r in caplog.records if "NVML unavailable" in r.getMessage()]) == 1


def test_real_pynvml_on_this_machine_never_raises():
    tel = GpuTelemetry()  # the installed pynvml; on a CPU machine NVML is absent
    s = tel.sample()
    assert s is None or (s.memory_total_bytes > 0 and 0 <= s.gpu_utilization_pct <= 100)
    tel.close()


def test_happy_path_reads_memory_and_utilisation():
    nvml = FakeNvml()
    tel = GpuTelemetry(device_index=1, nvml=nvml)
    s = tel.sample()
    assert s == GpuSample(1, 60 * 2**30, 80 * 2**30, 93.0, 41.0)
    assert s.memory_used_fraction == 0.75
    assert s.metrics() == {
        "gpu_memory_used_bytes": 60.0 * 2**30,
        "gpu_memory_total_bytes": 80.0 * 2**30,
        "gpu_utilization_pct": 93.0,
        "gpu_memory_utilization_pct": 41.0,
    }
    assert nvml.calls == ["init", ("handle", 1)]  # initialised once
    tel.sample()
    assert nvml.calls.count("init") == 1
    tel.close()
    assert "shutdown" in nvml.calls and tel.sample() is None


def test_read_failure_skips_the_sample_and_warns_once(caplog):
    tel = GpuTelemetry(nvml=FakeNvml(fail_read=True))
    with caplog.at_level(logging.WARNING, logger="dynabatch.telemetry"):
        assert tel.sample() is None and tel.sample() is None
    assert len([r for r in caplog.records if "read failed" in r.getMessage()]) == 1

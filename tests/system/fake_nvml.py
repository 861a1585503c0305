"""A test double at the nvidia-ml-py boundary: the functions ``system.gpus`` calls,
returning what the real library returns.

The shapes are the library's own, taken from nvidia-ml-py 13.x (``pynvml.py``):
``nvmlDeviceGetMemoryInfo`` gives a ``c_nvmlMemory_t`` (``total``/``free``/``used``,
bytes); ``nvmlDeviceGetUtilizationRates`` a ``c_nvmlUtilization_t`` (``gpu``,
``memory``, %); power and its limit are ints in milliwatts; the temperature an
int in °C; ``nvmlDeviceGetName`` a ``str`` (``@convertStrBytes``; bytes in
older releases); ``nvmlDeviceGetComputeRunningProcesses`` a list of
``nvmlFriendlyObject`` with ``pid``, ``usedGpuMemory`` (bytes, or ``None`` where
the driver does not say), ``gpuInstanceId``, ``computeInstanceId``. Errors are
the library's ``NVMLError_*`` classes. Where nvidia-ml-py is not installed,
the tests that need this double skip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")

MIB = 1024 * 1024


@dataclass
class FakeGpu:
    name: str = "NVIDIA A100-SXM4-80GB"
    util: int = 97
    used_mib: int = 71_000
    total_mib: int = 81_920
    power_mw: int | None = 380_500
    limit_mw: int = 400_000
    temp: int = 63
    procs: dict[int, int | None] = field(default_factory=dict)  # pid -> used MiB
    lost: bool = False


class FakeNvml:
    """Looks like the ``pynvml`` module to ``trainwatch.system.gpus.Nvml``."""

    NVMLError = pynvml.NVMLError
    NVMLError_GpuIsLost = pynvml.NVMLError_GpuIsLost
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(self, gpus: list[FakeGpu], *, init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.calls: list[str] = []
        self.shut = False

    def _gpu(self, handle: Any) -> FakeGpu:
        gpu = self.gpus[handle]
        if gpu.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index  # the real one is a ctypes pointer: opaque to the caller

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        gpu = self._gpu(handle)
        memory = pynvml.c_nvmlMemory_t()
        memory.total, memory.used = gpu.total_mib * MIB, gpu.used_mib * MIB
        memory.free = memory.total - memory.used
        return memory

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        util = pynvml.c_nvmlUtilization_t()
        util.gpu, util.memory = self._gpu(handle).util, 40
        return util

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        gpu = self._gpu(handle)
        if gpu.power_mw is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return self._gpu(handle).limit_mw

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self._gpu(handle).temp

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        out = []
        for pid, used in self._gpu(handle).procs.items():
            info = pynvml.c_nvmlProcessInfo_v3_t()
            info.pid, info.gpuInstanceId, info.computeInstanceId = pid, 0xFFFFFFFF, 0xFFFFFFFF
            info.usedGpuMemory = pynvml.NVML_VALUE_NOT_AVAILABLE_ulonglong.value if used is None else used * MIB
            obj = pynvml.nvmlStructToFriendlyObject(info)  # as the library's own function does
            if obj.usedGpuMemory == pynvml.NVML_VALUE_NOT_AVAILABLE_ulonglong.value:
                obj.usedGpuMemory = None
            out.append(obj)
        return out

"""The GPUs of this machine through NVML (nvidia-ml-py), when an NVIDIA driver is here.

``Nvml.open()`` returns ``None`` on a machine without the driver (a laptop,
CI): pynvml is not even imported then, and nothing is shown. With it, one
``sample()`` reads every GPU's utilisation, memory, power and temperature
and the compute processes on it, which ``system.probe`` matches to the
runs' processes. Every call can fail on its own: a figure a GPU does not
support is ``None``; a GPU that fell off the bus ("GPU is lost") is left out
and reported, and the rest go on.

``lib`` is the pynvml module, or in tests a double with the same functions
and return shapes (the library's own structs and error classes).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

DRIVER = "/proc/driver/nvidia/version"
_MIB = 1024 * 1024


def driver_present(marker: str = DRIVER) -> bool:
    """The NVIDIA kernel driver is loaded (containers run with the NVIDIA runtime see it too)."""
    return os.path.exists(marker)


@dataclass(frozen=True, slots=True)
class Device:
    """One GPU at one sample."""

    index: int
    name: str
    util_pct: float | None
    mem_used_mib: float | None
    mem_total_mib: float | None
    power_w: float | None
    power_limit_w: float | None
    temp_c: float | None
    #: PID -> GPU memory it holds (MiB; None where the driver does not say) of its compute processes.
    processes: dict[int, float | None] = field(default_factory=dict)


class Nvml:
    """NVML, initialised once; ``sample()`` each time the GPUs are looked at."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self._handles: list[tuple[int, Any]] = []
        #: Indices of GPUs that stopped answering.
        self.lost: set[int] = set()
        for index in range(lib.nvmlDeviceGetCount()):
            try:
                self._handles.append((index, lib.nvmlDeviceGetHandleByIndex(index)))
            except lib.NVMLError as exc:
                self._failed(index, exc)

    @classmethod
    def open(cls, lib: Any = None) -> Nvml | None:
        """NVML if an NVIDIA driver and nvidia-ml-py are here, else ``None`` (never raises)."""
        if lib is None:
            if not driver_present():
                return None
            try:
                import pynvml
            except ImportError:
                log.info("trainwatch: an NVIDIA driver is here but nvidia-ml-py is not installed")
                return None
            lib = pynvml
        try:
            lib.nvmlInit()
            return cls(lib)
        except Exception as exc:  # NVMLError (no library, driver mismatch) or a double's ctypes error
            log.info("trainwatch: NVML unavailable: %s", exc)
            return None

    def close(self) -> None:
        try:
            self._lib.nvmlShutdown()
        except Exception as exc:  # at exit: nothing left to do about it
            log.info("trainwatch: NVML shutdown: %s", exc)

    def sample(self) -> list[Device]:
        """Every answering GPU now."""
        out = []
        for index, handle in self._handles:
            if index in self.lost:
                continue
            try:
                out.append(self._device(index, handle))
            except self._lib.NVMLError as exc:
                self._failed(index, exc)
        return out

    def _failed(self, index: int, exc: Exception) -> None:
        if isinstance(exc, self._lib.NVMLError_GpuIsLost):
            self.lost.add(index)
            log.warning("trainwatch: GPU %d is lost", index)
        else:
            log.info("trainwatch: GPU %d: %s", index, exc)

    def _device(self, index: int, handle: Any) -> Device:
        lib = self._lib
        name = lib.nvmlDeviceGetName(handle)
        memory = self._figure(lib.nvmlDeviceGetMemoryInfo, handle)
        util = self._figure(lib.nvmlDeviceGetUtilizationRates, handle)
        power = self._figure(lib.nvmlDeviceGetPowerUsage, handle)
        limit = self._figure(lib.nvmlDeviceGetEnforcedPowerLimit, handle)
        temp = self._figure(lib.nvmlDeviceGetTemperature, handle, lib.NVML_TEMPERATURE_GPU)
        procs = self._figure(lib.nvmlDeviceGetComputeRunningProcesses, handle) or []
        return Device(
            index=index,
            name=name.decode(errors="replace") if isinstance(name, bytes) else str(name),
            util_pct=float(util.gpu) if util is not None else None,
            mem_used_mib=memory.used / _MIB if memory is not None else None,
            mem_total_mib=memory.total / _MIB if memory is not None else None,
            power_w=power / 1000 if power is not None else None,
            power_limit_w=limit / 1000 if limit is not None else None,
            temp_c=float(temp) if temp is not None else None,
            processes={int(p.pid): (p.usedGpuMemory / _MIB if p.usedGpuMemory is not None else None) for p in procs},
        )

    def _figure(self, call: Any, *args: Any) -> Any:
        """One NVML figure; ``None`` where this GPU does not give it. A lost GPU raises on."""
        try:
            return call(*args)
        except self._lib.NVMLError_GpuIsLost:
            raise
        except self._lib.NVMLError:
            return None

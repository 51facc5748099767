"""How much memory models may take, and what a load really used.

With an NVIDIA GPU (and `nvidia-ml-py` installed) the budget is the free VRAM seen at start-up,
unless `vram_budget` says otherwise. Without one, models live in RAM: the budget is `ram_budget`,
else `vram_budget`, else three quarters of the RAM available at start-up.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from localforge.errors import BadRequest

log = logging.getLogger(__name__)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: int | float | str | None) -> int | None:
    """`8GiB`, `512MB`, `1.5G` or a number of bytes; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    m = _SIZE.match(str(value))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise BadRequest(f"invalid memory size {value!r}: use bytes or a size like \"8GiB\"")
    return int(float(m.group(1)) * _UNITS[unit])


@dataclass(slots=True, frozen=True)
class Budget:
    bytes: int
    source: str  # where the figure came from, for the log and /metrics
    gpu: bool


def _nvml() -> Any | None:
    try:
        import pynvml  # nvidia-ml-py, optional
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            return None
    except Exception:  # no driver, no device: the CPU path applies
        return None
    return pynvml


def gpu_used_bytes() -> int | None:
    """Memory in use on GPU 0 now, or None without NVML."""
    nvml = _nvml()
    if nvml is None:
        return None
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    return int(nvml.nvmlDeviceGetMemoryInfo(handle).used)


def gpu_bytes_of(pid: int) -> int | None:
    """GPU memory a process holds on any GPU (NVML's per-process figure), or None without NVML."""
    nvml = _nvml()
    if nvml is None:
        return None
    total = 0
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if process.pid == pid and process.usedGpuMemory:
                total += int(process.usedGpuMemory)
    return total


def process_rss_bytes() -> int | None:
    """This process's resident memory (Linux), or None elsewhere."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 8 * 2**30


def detect(vram_budget: int | float | str | None, ram_budget: int | float | str | None) -> Budget:
    vram, ram = parse_bytes(vram_budget), parse_bytes(ram_budget)
    nvml = _nvml()
    if nvml is not None:
        if vram is not None:
            return Budget(vram, "vram_budget", True)
        info = nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(0))
        return Budget(int(info.free * 0.9), "nvml", True)  # leave room for the CUDA context
    if ram is not None:
        return Budget(ram, "ram_budget", False)
    if vram is not None:
        return Budget(vram, "vram_budget", False)
    return Budget(int(_available_ram() * 0.75), "available RAM", False)


def measured(before: int | None, after: int | None, estimate: int, gpu: bool) -> int | None:
    """What a load used, if the measurement is plausible. Other work in the process adds noise,
    so a figure far from the estimate is ignored. In RAM a load may reuse pages an unload freed
    (the allocator keeps them), so there the measurement may only raise the estimate."""
    if before is None or after is None:
        return None
    used = after - before
    if not estimate / 4 <= used <= estimate * 4:
        return None
    return used if gpu else max(used, estimate)

"""How much memory models may take, in two pools, and what a load really used.

VRAM: for each GPU NVML finds (with `nvidia-ml-py` installed), its free memory at start-up, with a
tenth left for the CUDA context, summed over the GPUs (llama.cpp spreads layers over them);
`vram_budget` overrides the figure. There is no VRAM pool when llama.cpp was built without GPU
offload: every layer would run on the CPU whatever the placement, so the start-up says so, with
the command that installs a CUDA build.

RAM: three quarters of the memory available at start-up (psutil, on Linux, macOS and Windows
alike), or `ram_budget`. On Apple Silicon (Metal, no NVML) memory is unified: two thirds of that
figure is the GPU's pool unless `vram_budget` says otherwise.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from localforge.errors import BadRequest
from localforge.resources.placement import Pools

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


def size(n: float) -> str:
    """Bytes as people read them: `512 B`, `98.3 MB`, `4.7 GB` (decimal units, as Ollama shows)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


CUDA_REINSTALL = ('CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
                  '--no-deps llama-cpp-python')


@dataclass(slots=True, frozen=True)
class Budget:
    pools: Pools
    vram_source: str  # where each figure came from, for the log, /metrics and the dashboard
    ram_source: str
    gpus: tuple[str, ...] = ()  # the GPUs NVML found, "NVIDIA GeForce RTX 4070 (12.0 GB)"
    warning: str = ""  # what stands between the user and their GPU, for the start-up banner

    @property
    def gpu(self) -> bool:
        return self.pools.vram > 0

    def banner(self) -> str:
        """The start-up lines that say where models will run."""
        vram = (f"{self.pools.vram / 1e9:.1f} GB of VRAM ({self.vram_source}"
                + (f": {', '.join(self.gpus)})" if self.gpus else ")") if self.gpu else "no GPU")
        line = f"memory for models: {vram}, {self.pools.ram / 1e9:.1f} GB of RAM ({self.ram_source})"
        return line + (f"\nWARNING: {self.warning}" if self.warning else "")

    @property
    def source(self) -> str:
        return f"VRAM: {self.vram_source}; RAM: {self.ram_source}" if self.gpu else self.ram_source


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


def gpus() -> list[tuple[str, int, int]]:
    """(name, free bytes, total bytes) of each GPU NVML finds; [] without NVML or a GPU."""
    nvml = _nvml()
    if nvml is None:
        return []
    found = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        info = nvml.nvmlDeviceGetMemoryInfo(handle)
        found.append((name.decode() if isinstance(name, bytes) else str(name), int(info.free), int(info.total)))
    return found


def gpu_used_bytes() -> int | None:
    """Memory in use on all GPUs now, or None without NVML."""
    nvml = _nvml()
    if nvml is None:
        return None
    return sum(total - free for _, free, total in gpus())


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


def available_ram() -> int:
    return int(psutil.virtual_memory().available)


def llama_gpu_offload() -> bool:
    """Whether the installed llama.cpp can put layers on a GPU (imports llama-cpp-python: only
    asked when there is a GPU to use)."""
    try:
        import llama_cpp
    except ImportError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def detect(vram_budget: int | float | str | None, ram_budget: int | float | str | None,
           offload: Callable[[], bool] = llama_gpu_offload) -> Budget:
    vram, ram = parse_bytes(vram_budget), parse_bytes(ram_budget)
    found = gpus()
    names = tuple(f"{name} ({total / 1e9:.1f} GB)" for name, _, total in found)
    ram_pool, ram_source = (ram, "ram_budget") if ram is not None else (
        int(available_ram() * 0.75), "available RAM")
    warning = ""
    if (found or vram) and not offload():
        warning = (f"{' and '.join(names) or 'a GPU'} found, but llama.cpp was built without GPU "
                   f"offload, so models run on the CPU. Install a CUDA build: {CUDA_REINSTALL}")
        return Budget(Pools(0, ram_pool), "none: llama.cpp has no GPU offload", ram_source, names, warning)
    if vram is not None:
        return Budget(Pools(vram, ram_pool), "vram_budget", ram_source, names)
    if found:  # leave a tenth for the CUDA context
        return Budget(Pools(int(sum(free for _, free, _ in found) * 0.9), ram_pool), "nvml",
                      ram_source, names)
    if sys.platform == "darwin" and offload():  # Apple Silicon: one unified memory, Metal's share
        return Budget(Pools(ram_pool * 2 // 3, ram_pool - ram_pool * 2 // 3),
                      "unified memory (Metal)", ram_source)
    return Budget(Pools(0, ram_pool), "no GPU", ram_source)


def measured(used: Pools | None, estimate: Pools) -> Pools | None:
    """What a load used from each pool, where the measurement is plausible (a figure far from the
    estimate is noise, and the estimate stays). RAM is measured as resident pages, and llama.cpp
    touches its buffers only as prompts grow, so there the measurement may only raise it."""
    if used is None:
        return None

    def plausible(got: int, expected: int) -> bool:
        return expected / 4 <= got <= expected * 4

    vram = used.vram if estimate.vram and plausible(used.vram, estimate.vram) else estimate.vram
    ram = max(used.ram, estimate.ram) if estimate.ram and plausible(used.ram, estimate.ram) else estimate.ram
    return Pools(vram, ram)

"""Each runner's fixed VRAM beside its buffers, measured once per GPU and remembered.

A runner process that uses the GPU holds its CUDA context and cuBLAS workspace there (about
0.5 GB on an H200 with CUDA 13, a few hundred MB on consumer cards) beside the buffers llama.cpp
allocates and logs (`Loaded.buffers`). NVML's figure for the runner minus those buffers is that
overhead, the same for every model. It is taken from the live runners at each load, the largest
one kept (cuBLAS allocates its workspace at the first decode, so a runner measured while it loads
may not hold it yet), and saved in `DATA_DIR/gpu-overhead.json` under the GPUs' names, so that a
restart on the same GPUs reserves it from the first placement. Without NVML it is never known,
and the scheduler assumes none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from localforge.resources import budget
from localforge.runner.protocol import on_gpu

log = logging.getLogger(__name__)


def gpu_names() -> str:
    """The GPUs NVML finds, as one key ("NVIDIA H200"; "" without NVML or a GPU)."""
    return " + ".join(sorted(name for name, _, _ in budget.gpus()))


def buffers_on_gpu(buffers: dict[str, int]) -> int:
    """The bytes of llama.cpp's buffers ("kind:device" -> bytes) that live in a GPU's memory."""
    return sum(size for name, size in buffers.items() if on_gpu(name.split(":", 1)[1]))


class RunnerOverhead:
    def __init__(self, path: Path, held: Callable[[int], int | None] = budget.gpu_bytes_of,
                 gpus: Callable[[], str] = gpu_names) -> None:
        self.path = path
        self._held = held  # NVML's figure for a process
        self._gpus = gpus
        self._key: str | None = None  # asked of NVML once, on first use
        self._bytes: int | None = None

    def _saved(self) -> dict[str, int]:
        try:
            saved = json.loads(self.path.read_text())
            return {k: int(v) for k, v in saved.items()} if isinstance(saved, dict) else {}
        except (OSError, ValueError, TypeError):
            return {}  # none yet, or unreadable: measured again

    def _gpu_key(self) -> str:
        if self._key is None:
            self._key = self._gpus()
            if self._key:
                self._bytes = self._saved().get(self._key)
        return self._key

    @property
    def known(self) -> int | None:
        """Bytes each runner holds beside its buffers, or None until measured on these GPUs."""
        self._gpu_key()
        return self._bytes

    def measure(self, runners: Iterable[tuple[int, dict[str, int]]]) -> int | None:
        """Measure it on live runners, each (pid, its `Loaded.buffers`); keep the largest."""
        if not self._gpu_key():
            return None
        found = self._bytes
        for pid, buffers in runners:
            reported = buffers_on_gpu(buffers)
            held = self._held(pid) if reported else None
            if held and held > reported:  # NVML may not see processes in another namespace
                found = max(found or 0, held - reported)
        if found is not None and found != self._bytes:
            self._bytes = found
            self._save(found)
        return self._bytes

    def _save(self, found: int) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({**self._saved(), self._gpu_key(): found}))
        except OSError as exc:
            log.warning("cannot remember the runners' GPU overhead in %s: %s", self.path, exc)

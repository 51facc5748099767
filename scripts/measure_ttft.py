"""Time to first token through LocalForge against llama-cpp-python called directly.

Same model (SmolLM2-135M-Instruct from the demo package), same prompt, same sampling, both warm.
Prints the median and p90 over N runs each, plus the server's start-up time.

    .venv/bin/python scripts/measure_ttft.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from llama_cpp import Llama

from localforge.store import demo

PROMPT = "What is the capital of France? Answer in one sentence."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def direct(path: Path, runs: int) -> list[float]:
    llm = Llama(str(path), n_ctx=4096, verbose=False)
    times = []
    for i in range(runs + 2):
        started = time.perf_counter()
        stream = llm.create_chat_completion([{"role": "user", "content": PROMPT}], stream=True,
                                            temperature=0, max_tokens=8)
        for chunk in stream:
            if chunk["choices"][0]["delta"].get("content"):
                break
        elapsed = time.perf_counter() - started
        for _ in stream:
            pass
        if i >= 2:  # warm-up
            times.append(elapsed)
    return times


def through_localforge(path: Path, runs: int) -> tuple[list[float], float]:
    folder = Path(tempfile.mkdtemp())
    config = folder / "lf.toml"
    config.write_text(f'demo_models = false\n[[models]]\nname = "smollm2:135m"\npath = "{path}"\n')
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "localforge.cli", "serve", "--port", str(port),
                                "--config", str(config), "--data-dir", str(folder), "--log-level", "warning"],
                               env={**os.environ, "OLLAMA_HOST": ""})
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            httpx.get(url + "/api/version", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.02)
    startup = time.perf_counter() - started
    body = {"model": "smollm2:135m", "messages": [{"role": "user", "content": PROMPT}],
            "options": {"temperature": 0, "num_predict": 8}}
    times = []
    try:
        with httpx.Client(timeout=60) as client:
            for i in range(runs + 2):
                t0 = time.perf_counter()
                with client.stream("POST", url + "/api/chat", json=body) as response:
                    lines = response.iter_lines()
                    for line in lines:
                        if '"content":""' not in line:
                            elapsed = time.perf_counter() - t0
                            break
                    for _ in lines:
                        pass
                if i >= 2:
                    times.append(elapsed)
    finally:
        process.terminate()
        process.wait()
    return times, startup


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {1000 * statistics.median(times):6.1f} ms   p90 {1000 * p90:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    path = demo.smollm2_path()
    if path is None:
        raise SystemExit("install the demo models first: pip install -e '.[demo]'")
    print(f"time to first token, SmolLM2-135M, {args.runs} warm runs each", flush=True)
    lf, startup = through_localforge(path, args.runs)
    print(f"  server start-up (process start to first answer on /api/version): {startup:.2f} s")
    print(f"  LocalForge /api/chat (HTTP, streaming):  {summary(lf)}", flush=True)
    print(f"  llama-cpp-python create_chat_completion: {summary(direct(path, args.runs))}")


if __name__ == "__main__":
    main()

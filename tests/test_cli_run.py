"""`localforge run` driven as a person drives it, through a pseudo-terminal, and in pipes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pexpect
import pytest
from conftest import RunningServer, smollm2_config, start_server, stop_server
from hub_server import Hub, start_hub
from tiny_gguf import write_tiny_llama

PROMPT = ">>> "


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    running = start_hub()
    gguf = write_tiny_llama(tmp_path_factory.mktemp("run-registry") / "m.gguf", seed=50)
    running.publish("library/fresh:latest", {"model": gguf.read_bytes()})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, registry: Hub) -> Iterator[RunningServer]:
    models = tmp_path_factory.mktemp("run-models")
    write_tiny_llama(models / "tiny.gguf")
    write_tiny_llama(models / "other.gguf", seed=3)
    running = start_server(tmp_path_factory.mktemp("run"), models, smollm2_config(),
                           env={"LOCALFORGE_REGISTRY": registry.url})
    yield running
    stop_server(running)


def env(server: RunningServer) -> dict[str, str]:
    return {**os.environ, "OLLAMA_HOST": server.url, "TERM": "dumb"}


def spawn(server: RunningServer, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "localforge.cli", "run", *args], env=env(server),
                          encoding="utf-8", timeout=60, dimensions=(40, 200))
    child.expect_exact(PROMPT)
    return child


def ask(child: pexpect.spawn, text: str) -> str:
    """Type a line, wait for the next prompt, and return what came back in between."""
    child.sendline(text)
    child.expect_exact(PROMPT)
    return (child.before or "").replace("\r\n", "\n")


def finish(child: pexpect.spawn) -> None:
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def run(server: RunningServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "localforge.cli", "run", *args], input=stdin,
                          capture_output=True, text=True, env=env(server), timeout=120)


def test_a_conversation_with_commands_and_multi_line_input(server: RunningServer) -> None:
    child = spawn(server, "tiny")
    answer = ask(child, "hello there")
    assert answer.startswith("hello there\n") and len(answer.strip()) > len("hello there")
    assert "Available Commands" in ask(child, "/?")
    assert "Set parameter 'num_predict' to '4'" in ask(child, "/set parameter num_predict 4")
    assert "Unknown parameter 'bogus'" in ask(child, "/set parameter bogus 1")
    assert "must be a number" in ask(child, "/set parameter top_k many")

    # a multi-line system message: `"""` opens it, continuation lines are read until `"""`
    child.sendline('/set system """You are terse.')
    child.expect_exact("... ")
    assert "Set system message." in ask(child, 'Answer in one line."""')
    assert "You are terse.\nAnswer in one line." in ask(child, "/show system")

    # a multi-line question is one message: one answer, one prompt after it
    child.sendline('"""')
    child.expect_exact("... ")
    child.sendline("first line")
    child.expect_exact("... ")
    child.sendline('second line"""')
    child.expect_exact(PROMPT)
    assert PROMPT not in (child.before or "")

    info = ask(child, "/show info")
    assert "architecture" in info and "llama" in info and "Capabilities" in info
    assert "Cleared session context" in ask(child, "/clear")
    assert "Unknown command '/nope'" in ask(child, "/nope")
    assert "Loading model 'other'" in ask(child, "/load other")
    assert "model 'ghost:latest' is not in the library" in ask(child, "/load ghost")
    assert len(ask(child, "hi").strip()) > len("hi")  # `other` answers
    finish(child)


def test_ctrl_c_stops_the_answer_not_the_session(server: RunningServer) -> None:
    child = spawn(server, "smollm2:135m")
    ask(child, "/set parameter num_predict 4000")
    child.sendline("Write a very long story about a dragon who learns to sing.")
    child.expect(r"\w+\W+\w+\W+\w+\W+\w+")  # the answer is streaming
    stopped = time.monotonic()
    child.sendintr()
    child.expect_exact(PROMPT, timeout=15)
    assert time.monotonic() - stopped < 10  # 4000 tokens would take minutes
    assert "Traceback" not in (child.before or "")
    # the session goes on, and the model is free at once
    started = time.monotonic()
    ask(child, "/set parameter num_predict 3")
    assert len(ask(child, "Say hi.").strip()) > len("Say hi.")
    assert time.monotonic() - started < 20
    # Ctrl-C at the prompt says how to leave; Ctrl-D leaves
    child.sendintr()
    child.expect_exact("Use Ctrl + d or /bye to exit.")
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_verbose_prints_the_timings_ollama_prints(server: RunningServer) -> None:
    child = spawn(server, "tiny", "--verbose")
    ask(child, "/set parameter num_predict 5")
    shown = ask(child, "hello")
    for label in ("total duration:", "load duration:", "prompt eval count:", "prompt eval rate:",
                  "eval count:", "eval duration:", "eval rate:"):
        assert label in shown, shown
    assert "tokens/s" in shown
    finish(child)


def test_one_prompt_answers_once_for_pipes(server: RunningServer) -> None:
    argument = run(server, "tiny", "hello", "there")
    assert argument.returncode == 0 and argument.stdout.strip(), argument.stderr
    piped = run(server, "tiny", stdin="hello from a pipe\n")
    assert piped.returncode == 0 and piped.stdout.strip() and not piped.stderr, piped.stderr
    both = run(server, "tiny", "--verbose", "summarise this", stdin="some text\n")
    assert both.returncode == 0 and "prompt eval count:" in both.stderr
    assert "prompt eval count:" not in both.stdout  # timings never pollute a pipe
    empty = run(server, "tiny", stdin="")
    assert empty.returncode == 1 and "nothing to answer" in empty.stderr


def test_auto_says_which_model_answered(server: RunningServer) -> None:
    models = {m.model for m in ollama.Client(host=server.url).list().models}
    answered = run(server, "auto", "What is the capital of France?")
    assert answered.returncode == 0, answered.stderr
    line = next(line for line in answered.stderr.splitlines() if line.startswith("[auto → "))
    assert line.removeprefix("[auto → ").rstrip("]") in models
    assert answered.stdout.strip()


def test_auto_answers_the_load_only_requests_ollama_sends(server: RunningServer) -> None:
    client = ollama.Client(host=server.url)
    assert client.chat("auto", messages=[]).done_reason == "load"
    assert client.chat("auto", messages=[], keep_alive=0).done_reason == "unload"
    response = httpx.post(server.url + "/api/generate", json={"model": "auto", "prompt": "", "stream": False})
    assert response.json()["done_reason"] == "load"


def test_a_missing_model_is_pulled_first(server: RunningServer) -> None:
    fresh = run(server, "fresh", "hello")
    assert fresh.returncode == 0, fresh.stderr
    assert "pulling manifest" in fresh.stderr and fresh.stderr.rstrip().endswith("success")
    assert fresh.stdout.strip()
    unknown = run(server, "ghost", "hello")
    assert unknown.returncode == 1 and "Error: " in unknown.stderr and "not in the library" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_a_server_that_is_not_there(tmp_path: Path) -> None:
    down = subprocess.run([sys.executable, "-m", "localforge.cli", "run", "tiny", "hi"], capture_output=True,
                          text=True, env={**os.environ, "OLLAMA_HOST": "127.0.0.1:1"}, timeout=60)
    assert down.returncode == 1 and "could not reach LocalForge" in down.stderr
    assert "Traceback" not in down.stderr

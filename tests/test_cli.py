"""`localforge list`, `ps`, `show` and `--help`, as a user types them."""

from __future__ import annotations

import os
import subprocess
import sys

import ollama
from conftest import RunningServer


def run(*args: str, server: RunningServer | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLLAMA_HOST": server.url if server else "127.0.0.1:1"}
    return subprocess.run([sys.executable, "-m", "localforge.cli", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_help_documents_every_command_and_option() -> None:
    top = run("--help").stdout
    for command in ("serve", "list", "ps", "show", "plugins"):
        assert command in top
    serve = run("serve", "--help").stdout
    for option in ("--host", "--port", "--config", "--models-dir", "--data-dir"):
        assert option in serve


def test_list_ps_and_show_talk_to_the_server(server: RunningServer, client: ollama.Client) -> None:
    listing = run("list", server=server)
    assert listing.returncode == 0 and "smollm2:135m" in listing.stdout and "NAME" in listing.stdout
    client.generate("tiny", "x", options={"num_predict": 1}, keep_alive="1m")
    running = run("ps", server=server)
    assert "tiny:latest" in running.stdout and "100% CPU" in running.stdout
    shown = run("show", "smollm2:135m", server=server)
    assert "llama" in shown.stdout and "8192" in shown.stdout and "completion" in shown.stdout
    assert "FROM smollm2:135m" in run("show", "smollm2:135m", "--modelfile", server=server).stdout


def test_a_clear_error_when_the_server_is_down_or_the_model_unknown(server: RunningServer) -> None:
    down = run("list")
    assert down.returncode != 0 and "could not reach" in down.stderr
    missing = run("show", "ghost", server=server)
    assert missing.returncode != 0 and "model 'ghost' not found" in missing.stderr


def test_a_reader_that_stops_early_gets_no_broken_pipe(server: RunningServer) -> None:
    # `localforge list | head -1`: the reader has gone before the table is written
    env = {**os.environ, "OLLAMA_HOST": server.url}
    reader, writer = os.pipe()
    os.close(reader)
    try:
        listing = subprocess.run([sys.executable, "-m", "localforge.cli", "list"], stdout=writer,
                                 stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    finally:
        os.close(writer)
    assert "BrokenPipeError" not in listing.stderr and "Traceback" not in listing.stderr


def test_ps_and_show_agree_and_say_only_what_is_true(server: RunningServer, client: ollama.Client) -> None:
    # the same configuration asked for in three ways, and the chat model's embedding configuration
    client.generate("smollm2:135m", "", keep_alive="1m")
    client.generate("smollm2:135m", "hi", options={"num_predict": 1, "num_ctx": 4096}, keep_alive="1m")
    client.embed("smollm2:135m", "hi", keep_alive="1m")
    rows = [line.split()[0] for line in run("ps", server=server).stdout.splitlines()[1:]]
    assert rows.count("smollm2:135m") == 1, rows
    loaded = next(m for m in client.ps().models if m.model == "smollm2:135m")
    assert len([m for m in client.ps().models if m.model == "smollm2:135m"]) == 1

    # show gives the num_ctx the model is loaded with by default, as ps shows it
    parameters = client.show("smollm2:135m").parameters or ""
    num_ctx = next(line.split()[1] for line in parameters.splitlines() if line.startswith("num_ctx"))
    assert int(num_ctx) == loaded.context_length == 4096
    shown = run("show", "smollm2:135m", server=server).stdout.splitlines()
    assert ["num_ctx", str(loaded.context_length)] in [line.split() for line in shown]

    # auto claims a capability only when one of its candidates has it
    auto = client.show("auto")
    candidates = [client.show(name) for name in auto.modelinfo["router.candidates"]]
    assert "vision" not in (auto.capabilities or [])
    for capability in auto.capabilities or []:
        assert any(capability in (c.capabilities or []) for c in candidates), capability

"""`localforge serve` as a user meets it: a second instance on a taken port or a live data folder
fails at once with a clear message and leaves the running instance's data alone; Ctrl-C with a
request in flight prints a line, not a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import RunningServer, free_port, smollm2_config, start_server, stop_server


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "localforge.cli", "serve", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "OLLAMA_HOST": ""})


def test_a_second_instance_never_touches_a_live_instances_data(tmp_path: Path, tiny_models: Path) -> None:
    (tmp_path / "first").mkdir()
    first = start_server(tmp_path / "first", tiny_models)
    try:
        port = first.url.rsplit(":", 1)[1]
        before = snapshot(first.data_dir)
        config = str(tmp_path / "first" / "localforge.toml")

        same_port = serve("--port", port, "--config", config, "--data-dir", str(first.data_dir),
                          "--models-dir", str(tiny_models))
        assert same_port.returncode != 0
        assert "listening on" not in same_port.stdout + same_port.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in same_port.stderr
        assert "address already in use" in same_port.stderr and "Traceback" not in same_port.stderr

        same_folder = serve("--port", str(free_port()), "--config", config, "--data-dir",
                            str(first.data_dir), "--models-dir", str(tiny_models))
        assert same_folder.returncode != 0
        assert "listening on" not in same_folder.stdout + same_folder.stderr
        assert f"the data folder {first.data_dir} is in use by LocalForge (pid {first.process.pid})" \
            in same_folder.stderr
        assert "Traceback" not in same_folder.stderr

        wipe = subprocess.run([sys.executable, "-m", "localforge.cli", "forget", "--all", "--data-dir",
                               str(first.data_dir)], capture_output=True, text=True, timeout=60)
        assert wipe.returncode != 0 and "stop it first" in wipe.stderr

        assert snapshot(first.data_dir) == before
        assert httpx.get(first.url + "/api/tags").status_code == 200  # the first one serves on
    finally:
        stop_server(first)


@pytest.mark.slow
def test_ctrl_c_with_a_request_in_flight_prints_a_line_not_a_traceback(tmp_path: Path,
                                                                      tiny_models: Path) -> None:
    running: RunningServer = start_server(tmp_path, tiny_models, smollm2_config())
    answered: list[str] = []

    def ask() -> None:
        body = {"model": "smollm2:135m", "prompt": "Tell me a long story about a dragon.",
                "options": {"num_predict": 2000}, "stream": False}
        try:
            answered.append(httpx.post(running.url + "/api/generate", json=body, timeout=60).text)
        except httpx.HTTPError as exc:
            answered.append(type(exc).__name__)

    asker = threading.Thread(target=ask)
    asker.start()
    deadline = time.monotonic() + 30
    while "smollm2" not in httpx.get(running.url + "/api/ps").text and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # generating now
    running.process.send_signal(signal.SIGINT)
    running.process.wait(timeout=30)
    asker.join(timeout=30)
    log = running.log()
    assert "Traceback" not in log, log
    assert len(log.strip().splitlines()) <= 6, log


def test_idle_connections_time_out(server: RunningServer) -> None:
    """Issue 15: idle connections were kept for ever, until the descriptors ran out."""
    import socket

    from localforge.server.connections import HEADERS_S

    host, port = server.url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(20)]
    trickling = socket.create_connection((host, int(port)))
    trickling.sendall(b"GET /api/version HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    started = time.monotonic()
    while time.monotonic() - started < HEADERS_S + 3:
        trickling.sendall(b"a")  # a byte at a time never finishes the headers
        assert httpx.get(server.url + "/api/version", timeout=5).status_code == 200
        time.sleep(1)
        if time.monotonic() - started > HEADERS_S + 1:
            break
    for sock in [*idle, trickling]:
        sock.settimeout(5)
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
        assert data == b""  # closed by the server
        sock.close()

"""`localforge serve` as a user meets it: a second instance on a taken port or a live data folder
fails at once with a clear message and leaves the running instance's data alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import free_port, start_server, stop_server


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

        assert snapshot(first.data_dir) == before
        assert httpx.get(first.url + "/api/tags").status_code == 200  # the first one serves on
    finally:
        stop_server(first)

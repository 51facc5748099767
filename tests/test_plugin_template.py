"""contrib/plugin-template is a real plugin package: built and installed, it is registered, its own
test passes, and a LocalForge serves its model to the ollama client.

It is installed into a target folder on the child processes' path, not into the shared venv, so
that other test runs on the same venv never see a stray `echo` model; the folder is removed after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
from conftest import stop_server
from upstreams import start_front

TEMPLATE = Path(__file__).parent.parent / "contrib" / "plugin-template"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(TEMPLATE)], check=True, capture_output=True)
    yield {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}
    for folder in (target, TEMPLATE / "build"):
        shutil.rmtree(folder, ignore_errors=True)


def test_localforge_plugins_lists_the_template_and_its_backend(site: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "localforge.toml"
    config.write_text('demo_models = false\n[echo]\nmodel = "parrot:1b"\n')
    out = subprocess.run([sys.executable, "-m", "localforge.cli", "plugins", "--config", str(config), "--models"],
                         env=site, check=True, capture_output=True, text=True).stdout
    plugin = next(p for p in json.loads(out) if p["name"] == "echo")
    assert plugin["package"] == "localforge-echo 0.1.0"
    assert plugin["hooks"] == ["register_backends"]
    assert plugin["backends"] == [{"name": "echo", "models": ["parrot:1b"]}]


def test_the_template_own_tests_pass_once_installed(site: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(TEMPLATE / "tests")], env=site, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_a_server_serves_the_template_model(site: dict[str, str], tmp_path: Path) -> None:
    server = start_front(tmp_path, "", env={"PYTHONPATH": site["PYTHONPATH"]})
    try:
        reply = ollama.Client(host=server.url).chat("echo", messages=[{"role": "user", "content": "polly wants"}])
    finally:
        stop_server(server)
    assert reply.message.content == "polly wants"

"""A key guards the door: with `api_keys` set, the real `ollama` and `openai` clients and the CLI
get in with the key and get a 401 in their own format without it; the liveness endpoints stay
open, the key never shows in a log, and an open non-loopback bind is warned about."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from conftest import RunningServer, start_server, stop_server

KEY = f"lf-{uuid.uuid4().hex}"
OTHER_KEY = f"lf-{uuid.uuid4().hex}"
QUICK = {"num_predict": 2}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("guarded")
    running = start_server(home, tiny_models, f'api_keys = ["{KEY}", "{OTHER_KEY}"]\n', log_level="debug")
    yield running
    stop_server(running)


def test_a_key_guards_every_endpoint_but_the_liveness_ones(guarded: RunningServer) -> None:
    url = guarded.url
    # liveness: open, as clients probe it before they know about keys
    assert httpx.get(url + "/").text == "Ollama is running"
    assert httpx.head(url + "/").status_code == 200
    assert httpx.get(url + "/api/version").status_code == 200

    # the ollama client: in with the key (either configured key), a 401 in Ollama's format without
    for key in (KEY, OTHER_KEY):
        client = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert "tiny:latest" in [m.model for m in client.list().models]
        assert client.generate("tiny", "hi", options=QUICK).done
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
        with pytest.raises(ollama.ResponseError) as denied:
            ollama.Client(host=url, headers=headers).list()
        assert denied.value.status_code == 401
    for method, path in [("GET", "/api/tags"), ("GET", "/api/ps"), ("POST", "/api/show"),
                         ("POST", "/api/chat"), ("DELETE", "/api/delete"), ("POST", "/api/pull"),
                         ("POST", "/api/pull/files"),
                         ("GET", "/metrics"), ("POST", "/api/route"), ("POST", "/api/feedback")]:
        response = httpx.request(method, url + path, json={"model": "tiny"})
        assert response.status_code == 401, path
        assert set(response.json()) == {"error"} and "API key" in response.json()["error"]

    # the openai client: in with its api_key, an AuthenticationError with OpenAI's error object without
    good = openai.OpenAI(base_url=url + "/v1", api_key=KEY)
    assert "tiny:latest" in [m.id for m in good.models.list()]
    answer = good.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=2)
    assert answer.choices[0].message is not None
    with pytest.raises(openai.AuthenticationError) as refused:
        openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0).models.list()
    assert refused.value.status_code == 401
    error = httpx.get(url + "/v1/models").json()["error"]
    assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"

    # the CLI sends LOCALFORGE_API_KEY
    env = {**os.environ, "OLLAMA_HOST": url, "LOCALFORGE_API_KEY": KEY}
    listing = subprocess.run([sys.executable, "-m", "localforge.cli", "list"], capture_output=True,
                             text=True, env=env, timeout=60)
    assert listing.returncode == 0 and "tiny:latest" in listing.stdout
    env.pop("LOCALFORGE_API_KEY")
    refused_cli = subprocess.run([sys.executable, "-m", "localforge.cli", "ps"], capture_output=True,
                                 text=True, env=env, timeout=60)
    assert refused_cli.returncode != 0 and "API key" in refused_cli.stderr

    log = guarded.log()
    assert "/api/tags" in log  # the debug log did record the requests...
    for key in (KEY, OTHER_KEY):
        assert key not in log and key[-12:] not in log  # ...and never the keys


def test_an_open_bind_without_a_key_warns_at_start_up(tmp_path: Path, tiny_models: Path) -> None:
    running = start_server(tmp_path, tiny_models, env={"LOCALFORGE_HOST": "0.0.0.0"})
    try:
        assert httpx.get(running.url + "/api/tags").status_code == 200  # open, as configured
    finally:
        stop_server(running)
    warning = running.log()
    assert "0.0.0.0" in warning and "no API key" in warning and "LOCALFORGE_API_KEY" in warning

"""`auto` learns only from what is true: a model's own faults, not a client's errors or caps; its
context policy checks the context a model will be loaded with; and `ollama run auto` loads.

Tiny random models only. Priors make the order plain: `broken` (a GGUF cut short, so llama.cpp
cannot load it) looks best, then `tiny`, then `roomy` (the only one loaded with a large context).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest
from conftest import ROUTER_NO_EXPLORATION, RunningServer, start_server, stop_server
from tiny_gguf import write_tiny_llama

BROKEN, TINY, ROOMY, PLAIN = "broken:latest", "tiny:latest", "roomy:latest", "tiny-plain:latest"
SMALL_CTX, ROOMY_CTX = 256, 2048


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("truth")
    models = home / "models"
    models.mkdir()
    write_tiny_llama(models / "tiny.gguf")
    write_tiny_llama(models / "tiny-plain.gguf", chat_template=None, seed=2)
    broken = write_tiny_llama(models / "broken.gguf", seed=3)
    with open(broken, "r+b") as f:  # the header and metadata stay readable; the weights do not
        f.truncate(broken.stat().st_size * 2 // 3)
    roomy = write_tiny_llama(home / "roomy.gguf", seed=4)
    config = f"""
default_num_ctx = {SMALL_CTX}

[[models]]
name = "roomy"
path = "{roomy}"
num_ctx = {ROOMY_CTX}

{ROUTER_NO_EXPLORATION}seed = 1
stickiness = 0.0

[router.models."{BROKEN}"]
quality = {{ general = 0.95 }}

[router.models."{TINY}"]
quality = {{ general = 0.9 }}

[router.models."{ROOMY}"]
quality = {{ general = 0.6 }}

[router.models."{PLAIN}"]
quality = {{ general = 0.3 }}
"""
    running = start_server(home, models, config)
    yield running
    stop_server(running)


def chat(server: RunningServer, text: str, **extra: Any) -> httpx.Response:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], "stream": False, **extra}
    return httpx.post(server.url + "/api/chat", json=body, timeout=120)


def last_routed(server: RunningServer) -> str:
    db = sqlite3.connect(server.data_dir / "localforge.db")
    try:
        return str(db.execute("select request_id from routes order by id desc limit 1").fetchone()[0])
    finally:
        db.close()


def outcomes(server: RunningServer, request_id: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(server.data_dir / "localforge.db")
    try:
        return [(m, k) for m, k in db.execute(
            "select o.model, o.kind from outcomes o join routes r on r.id = o.route_id "
            "where r.request_id = ? order by o.id", [request_id])]
    finally:
        db.close()


def test_auto_learns_only_from_model_faults(server: RunningServer) -> None:
    # a model fault: `broken` cannot load; `tiny` serves instead and the fault is learned. The
    # answer stops at the client's own num_predict, which says nothing about `tiny`
    served = chat(server, "Say hello to the world.", options={"num_predict": 3, "temperature": 0})
    assert served.status_code == 200, served.text
    assert served.headers["X-LocalForge-Model"] == TINY
    assert served.headers["X-LocalForge-Route"].startswith(f"fallback: {BROKEN} failed")
    assert served.json()["done_reason"] == "length"
    assert outcomes(server, served.headers["X-LocalForge-Request-Id"]) == [(BROKEN, "error")]

    # a client error: a format schema no model can follow is the request's fault, not tiny's;
    # no other candidate is tried and nothing is learned about any model that saw it
    bad = chat(server, "Describe a cat as JSON.", format={"type": "object", "properties": {"a": {"type": "wat"}}})
    assert bad.status_code == 400 and "invalid format schema" in bad.json()["error"]
    learned = outcomes(server, last_routed(server))
    assert [o for o in learned if o[0] != BROKEN] == []


def test_ollama_run_auto_loads_and_stop_unloads(server: RunningServer) -> None:
    """`ollama run auto` first sends a load-only request, `ollama stop auto` an unload. auto
    chooses per prompt, so there is nothing to load yet: both are answered at once, and the
    first real prompt loads what it needs."""
    client = ollama.Client(host=server.url, timeout=30)
    loaded = client.chat("auto", messages=[])
    assert loaded.done and loaded.done_reason == "load" and loaded.message.content == ""
    assert client.generate("auto:cheap").done_reason == "load"
    assert client.generate("auto", keep_alive=0).done_reason == "unload"
    assert client.chat("auto", messages=[], keep_alive=0).done_reason == "unload"
    with pytest.raises(ollama.ResponseError) as unknown:
        client.chat("auto:nonsense", messages=[])
    assert unknown.value.status_code == 400 and "unknown routing preset" in unknown.value.error


def test_the_context_policy_checks_the_context_a_model_is_loaded_with(server: RunningServer) -> None:
    """Every tiny model was trained on 2048 tokens but is loaded with the server's default of
    256; only roomy is loaded with all 2048. A prompt of about 400 tokens fits roomy alone."""
    long = "the a is of and to " * 65
    plan = httpx.post(server.url + "/api/route", json={"model": "auto", "prompt": long}, timeout=60).json()
    assert plan["model"] == ROOMY
    for model in (BROKEN, TINY, PLAIN):
        assert plan["removed"][model].startswith("context:") and f"context of {SMALL_CTX}" in plan["removed"][model]
    served = chat(server, long, options={"num_predict": 2})
    assert served.status_code == 200, served.text
    assert served.headers["X-LocalForge-Model"] == ROOMY
    assert not served.headers["X-LocalForge-Route"].startswith("fallback")

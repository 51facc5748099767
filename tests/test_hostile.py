"""Hostile input gets a clean 4xx naming the problem, never a 5xx, a dead runner or a dead server
(issue 15: K1–K5 and every 5xx the fuzzing run found)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer

SMOL = "smollm2:135m"
HI = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def message_of(response: httpx.Response) -> str:
    body = response.json()
    error = body["error"]
    if response.request.url.path.startswith("/v1/"):
        assert error["type"] == "invalid_request_error"
        return str(error["message"])
    assert set(body) == {"error"}
    return str(error)


def still_serving(http: httpx.Client, model: str = "tiny") -> None:
    """The server and the model's runner both survived: a plain request is answered."""
    response = http.post("/api/generate", json={"model": model, "prompt": "hi", "stream": False,
                                                "options": {"num_predict": 2}})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("path", "body", "field"), [
    # K1, and num_batch 0 or 2^31 (a 502 and a 2 TiB allocation before)
    ("/api/generate", {"model": SMOL, "prompt": "hi", "options": {"num_batch": -1}}, "num_batch"),
    ("/api/generate", {"model": SMOL, "prompt": "hi", "options": {"num_batch": 0}}, "num_batch"),
    ("/api/generate", {"model": SMOL, "prompt": "hi", "options": {"num_batch": 2**31}}, "num_batch"),
    ("/api/chat", {"model": SMOL, "messages": HI, "options": {"num_ctx": -5}}, "num_ctx"),
    ("/api/chat", {"model": SMOL, "messages": HI, "options": {"mirostat": 7}}, "mirostat"),
    ("/api/chat", {"model": SMOL, "messages": HI, "options": {"top_k": 2**40}}, "top_k"),
    # K2, K3: grammars llama.cpp aborts on
    ("/api/generate", {"model": SMOL, "prompt": "hi", "format": {"enum": []}}, "enum"),
    ("/api/chat", {"model": SMOL, "messages": HI, "format": {"enum": []}}, "enum"),
    ("/api/chat", {"model": SMOL, "messages": HI, "format": {"anyOf": []}}, "anyOf"),
    ("/api/generate", {"model": SMOL, "prompt": "hi",
                       "format": {"type": "string", "maxLength": 5000}}, "maxLength"),
    ("/api/generate", {"model": SMOL, "prompt": "hi",
                       "format": {"type": "array", "maxItems": 5000}}, "maxItems"),
    ("/api/chat", {"model": SMOL, "messages": HI,
                   "format": {"type": "string", "pattern": "^a{1,100000}$"}}, "pattern"),
    ("/api/chat", {"model": SMOL, "messages": HI, "format": {"type": "object", "properties": {
        "x": {"type": "string", "pattern": "^(a{1,40}){1,40}$"}}}}, "pattern"),
    ("/v1/chat/completions", {"model": SMOL, "messages": HI, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"enum": []}}}}, "enum"),
    # K4: num_ctx 300, 320, 384 for embeddings corrupted llama.cpp's heap
    ("/api/embed", {"model": SMOL, "input": "x", "options": {"num_ctx": 320}}, "num_ctx"),
    ("/api/embed", {"model": SMOL, "input": "x", "options": {"num_ctx": 300}}, "num_ctx"),
    ("/api/embed", {"model": SMOL, "input": "x", "options": {"num_ctx": 384}}, "num_ctx"),
    # K5 in a list (a lone "" is Ollama's empty input, below)
    ("/api/embed", {"model": SMOL, "input": ["a", ""]}, "input[1]"),
    ("/v1/embeddings", {"model": SMOL, "input": ""}, "input[0]"),
    # malformed tools and tool_choice
    ("/api/chat", {"model": SMOL, "messages": HI, "tools": [{"function": "x"}]}, "tools[0]"),
    ("/v1/chat/completions", {"model": SMOL, "messages": HI, "tools": [{"function": "x"}]}, "tools[0]"),
    ("/v1/chat/completions", {"model": SMOL, "messages": HI, "tools": [TOOL],
                              "tool_choice": {"function": "x"}}, "tool_choice"),
    # templates are code: errors in them are the template's
    ("/api/generate", {"model": "tiny", "prompt": "hi", "template": "{{ 1/0 }}"}, "template"),
    ("/api/generate", {"model": "tiny", "prompt": "hi", "template": "{{ 'a' * 50000000 }}"}, "large"),
    ("/api/generate", {"model": "tiny", "prompt": "hi", "template": "{{ 2 ** 100000000 }}"}, "exponent"),
    ("/api/generate", {"model": "tiny", "prompt": "hi", "template":
                       "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}"}, "template"),
    ("/api/generate", {"model": "tiny", "prompt": "hi", "template": "{% if false %}x{% endif %}"}, "empty"),
])
def test_hostile_request_is_a_400_naming_the_field(http: httpx.Client, path: str, body: dict[str, Any],
                                                   field: str) -> None:
    response = http.post(path, json={**body, "stream": False})
    assert response.status_code == 400, response.text
    assert field in message_of(response)


def test_the_runners_survive_the_hostile_requests(http: httpx.Client) -> None:
    still_serving(http, SMOL)
    response = http.post("/api/embed", json={"model": SMOL, "input": ["a", "b"],
                                             "options": {"num_ctx": 512}})
    assert response.status_code == 200 and len(response.json()["embeddings"]) == 2
    response = http.post("/api/embed", json={"model": SMOL, "input": "a", "options": {"num_ctx": 320,
                                                                                      "num_batch": 256}})
    assert response.status_code == 200  # the same context with a batch llama.cpp takes


def test_empty_embed_input_is_ollamas_empty_answer(http: httpx.Client) -> None:
    for _ in range(4):  # K5: once in four, heap corruption aborted the next request
        response = http.post("/api/embed", json={"model": SMOL, "input": ""})
        assert response.status_code == 200 and response.json()["embeddings"] == []
    still_serving(http, SMOL)


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/embed", "/api/create",
                                  "/api/show", "/v1/chat/completions", "/v1/embeddings", "/api/route"])
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_400(http: httpx.Client, path: str, depth: int) -> None:
    nested = '{"model":"tiny","options":' + '{"a":' * depth + "1" + "}" * (depth + 1)
    response = http.post(path, content=nested, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "nested" in message_of(response)
    listed = '{"model":"tiny","format":' + "[" * depth + "]" * depth + "}"
    response = http.post(path, content=listed, headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_huge_keep_alive_leaves_ps_working(http: httpx.Client) -> None:
    response = http.post("/api/generate", json={"model": "tiny", "prompt": "", "keep_alive": 1e12})
    assert response.status_code == 200
    ps = http.get("/api/ps")
    assert ps.status_code == 200, ps.text
    assert any(m["name"] == "tiny:latest" for m in ps.json()["models"])
    http.post("/api/generate", json={"model": "tiny", "prompt": "", "keep_alive": "5m"})


@pytest.mark.parametrize(("body", "field"), [
    ({"from": "tiny", "parameters": {"top_k": []}}, "top_k"),
    ({"from": "tiny", "parameters": {"seed": None}}, "seed"),
    ({"from": "tiny", "parameters": {"stop": [1]}}, "stop"),
    ({"from": "tiny", "parameters": {"num_batch": -1}}, "num_batch"),
    ({"from": "tiny", "template": "{{ 1/0 }}"}, "template"),
    ({"from": "tiny", "template": "{% if false %}{% endif %}"}, "empty"),
    ({"from": "/" + "a" * 5000}, "from"),
    ({"from": "a" * 5000}, "invalid model name"),
])
def test_create_refuses_what_would_fail_every_later_chat(http: httpx.Client, body: dict[str, Any],
                                                         field: str) -> None:
    response = http.post("/api/create", json={"model": "hostile-create", **body, "stream": False})
    assert response.status_code == 400, response.text
    assert field in message_of(response)
    assert http.post("/api/show", json={"model": "hostile-create"}).status_code == 404


@pytest.mark.parametrize("name", ["bad\nname", "tiny\n", "x\n:latest", "a:b\r", "t\x00", "t\x1b[31m"])
def test_names_with_control_characters_are_refused(http: httpx.Client, name: str) -> None:
    response = http.post("/api/create", json={"model": name, "from": "tiny", "stream": False})
    assert response.status_code == 400 and "invalid model name" in message_of(response)
    response = http.post("/api/copy", json={"source": "tiny", "destination": name})
    assert response.status_code == 400


def test_a_huge_prompt_is_refused_without_stalling_others(server: RunningServer) -> None:
    """A 30 MB prompt once stalled every client for 17-39 s: it is refused by size, in a thread."""
    import threading

    with httpx.Client(base_url=server.url, timeout=120) as big, \
            httpx.Client(base_url=server.url, timeout=120) as small:
        result: dict[str, httpx.Response] = {}
        thread = threading.Thread(target=lambda: result.setdefault("big", big.post(
            "/api/chat", json={"model": "tiny", "stream": False,
                               "messages": [{"role": "user", "content": "word " * 6_000_000}]})))
        thread.start()
        started = time.monotonic()
        while thread.is_alive() and time.monotonic() - started < 60:
            tick = time.monotonic()
            assert small.get("/api/version").status_code == 200
            assert time.monotonic() - tick < 2.0, "the event loop stalled"
            time.sleep(0.05)
        thread.join()
    assert result["big"].status_code in (400, 413)
    assert "characters" in message_of(result["big"]) or "large" in message_of(result["big"])


def test_old_bad_models_and_config_entries_do_not_break_serving(tmp_path: Path) -> None:
    """A model stored by an older build with a null seed or a non-string stop still answers, and a
    [[models]] entry with an impossible parameter is skipped, not fatal to the others."""
    from conftest import start_server, stop_server
    from tiny_gguf import write_tiny_llama

    from localforge.store.layout import Manifest, ModelStore

    models = tmp_path / "models"
    models.mkdir()
    gguf = write_tiny_llama(models / "tiny.gguf")
    store = ModelStore(models)
    store.ensure()
    store.write(Manifest(model="legacy:latest", gguf=str(gguf), source="file",
                         parameters={"seed": None, "stop": [1, "x"], "num_predict": 2}))
    running = start_server(tmp_path, models, f'[[models]]\nname = "impossible"\npath = "{gguf}"\n'
                                             'parameters = { num_batch = -1 }\n')
    try:
        with httpx.Client(base_url=running.url, timeout=60) as http:
            still_serving(http, "legacy")
            still_serving(http, "tiny")
            assert http.post("/api/show", json={"model": "impossible"}).status_code == 404
        assert "skipping configured model impossible" in running.log()
    finally:
        stop_server(running)

"""Property-based fuzzing of every endpoint's body (issue 15): whatever JSON a client sends, the
answer is never a 5xx and the server never dies.

Bodies are drawn per endpoint from the fields the endpoint knows, each holding either a plausible
value or arbitrary JSON (nested, huge numbers, odd strings, control characters), plus raw bytes
that are not JSON at all. Requests go to a LocalForge process of its own over a tiny random GGUF,
so hostile options and formats really reach the runner path. /api/pull is left out: it would
try the network.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer, start_server, stop_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_gguf import write_tiny_llama

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
           | st.sampled_from(["", "tiny", "json", "\n", "../../etc/passwd", "{{ 1/0 }}", "x" * 300]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
MODEL = st.sampled_from(["tiny"] * 12 + ["tiny:latest", "ghost", "", "tiny\n", "a/b/c/d/e", "auto", "x" * 300])
OPTION_KEYS = ["num_ctx", "num_batch", "num_predict", "temperature", "top_k", "top_p", "seed", "stop",
               "mirostat", "repeat_last_n", "num_thread", "num_gpu", "min_p", "use_mmap"]
OPTIONS = st.dictionaries(st.sampled_from(OPTION_KEYS), st.integers(-5, 600) | SCALARS | JSON, max_size=3)
SCHEMA = st.recursive(
    st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["string", "integer", "number", "boolean", "array", "object", "null"]) | JSON,
        "enum": st.lists(SCALARS, max_size=3), "maxLength": SCALARS, "minLength": SCALARS,
        "maxItems": SCALARS, "pattern": st.sampled_from(["^a{1,3}$", "^a{1,99999}$", "(", "^$"]) | SCALARS}),
    lambda inner: st.fixed_dictionaries({"type": st.just("object")}, optional={
        "properties": st.dictionaries(st.text(max_size=5), inner, max_size=3),
        "anyOf": st.lists(inner, max_size=2), "items": inner}),
    max_leaves=6)
FORMAT = st.none() | st.just("json") | SCHEMA | JSON
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool"])},
                                optional={"content": st.text(max_size=30), "images": JSON,
                                          "tool_calls": JSON})
MESSAGES = st.lists(MESSAGE, min_size=1, max_size=3)
TOOLS = st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=8)}, optional={"parameters": SCHEMA | JSON})}), max_size=2) | JSON
COMMON = {"options": OPTIONS, "keep_alive": st.sampled_from(["5m", "5m", -1, 1e12, "x"]) | JSON,
          "stream": st.booleans()}
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "/api/generate": {**COMMON, "model": MODEL, "prompt": st.text(max_size=40) | JSON, "system": JSON, "suffix": JSON,
                      "template": st.sampled_from(["{{ .Prompt }}", "{{ 'a' * 99999999 }}", "{% for %}"])
                      | JSON, "format": FORMAT, "raw": JSON, "context": JSON, "images": JSON, "think": JSON},
    "/api/chat": {**COMMON, "model": MODEL, "messages": MESSAGES, "tools": TOOLS, "format": FORMAT, "think": JSON},
    "/api/embed": {**COMMON, "model": MODEL, "truncate": JSON, "dimensions": JSON,
                   "input": st.text(max_size=20) | st.lists(st.text(max_size=10), max_size=3) | JSON},
    "/api/embeddings": {**COMMON, "model": MODEL, "prompt": st.text(max_size=20) | JSON},
    "/api/show": {"model": MODEL, "name": MODEL, "verbose": JSON},
    "/api/create": {"model": MODEL, "from": MODEL, "template": JSON | st.just("{{ 1/0 }}"),
                    "parameters": OPTIONS, "system": JSON, "license": JSON, "messages": MESSAGES,
                    "files": JSON, "stream": JSON},
    "/api/copy": {"source": MODEL, "destination": MODEL},
    "/api/delete": {"model": MODEL, "name": MODEL},
    "/api/route": {"model": MODEL, "prompt": JSON, "messages": MESSAGES},
    "/api/feedback": {"request_id": JSON, "thumbs": JSON, "score": JSON},
    "/v1/chat/completions": {"model": MODEL, "messages": MESSAGES, "tools": TOOLS, "tool_choice": JSON,
                             "max_tokens": JSON, "temperature": JSON, "stop": JSON, "seed": JSON,
                             "response_format": JSON | st.fixed_dictionaries({
                                 "type": st.just("json_schema"),
                                 "json_schema": st.fixed_dictionaries({"name": st.just("x"), "schema": SCHEMA})}),
                             "stream": JSON, "n": JSON},
    "/v1/completions": {"model": MODEL, "prompt": JSON, "max_tokens": JSON, "suffix": JSON, "stream": JSON},
    "/v1/embeddings": {"model": MODEL, "input": JSON, "encoding_format": JSON},
}


def body_for(path: str) -> st.SearchStrategy[Any]:
    """Mostly well-formed bodies with a few hostile fields, so the deep paths are reached."""
    optional = dict(FIELDS[path])
    required = {key: optional.pop(key) for key in ("model", "messages") if key in optional}
    return st.fixed_dictionaries(required, optional=optional)


REQUESTS = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda path: st.tuples(st.just(path), st.one_of(body_for(path), body_for(path), body_for(path),
                                                    JSON, st.binary(max_size=40))))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("fuzz")
    models = tmp / "models"
    models.mkdir()
    write_tiny_llama(models / "tiny.gguf")
    running = start_server(tmp, models)
    yield running
    stop_server(running)


def _send(http: httpx.Client, path: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return http.post(path, content=body, headers={"content-type": "application/json"})
    if isinstance(body, dict):
        # keep answers short: the fuzzing is about the input, not about long generations
        if isinstance(body.get("options"), dict):
            body["options"]["num_predict"] = 4
        if path.startswith("/v1/") and "max_tokens" not in body:
            body["max_tokens"] = 4
        if path in ("/api/generate", "/api/chat") and "options" not in body:
            body["options"] = {"num_predict": 4}
        if path == "/api/delete":
            return http.request("DELETE", path, json=body)
    return http.post(path, json=body)


def test_no_body_gets_a_5xx_or_kills_the_server(fuzz_server: RunningServer, tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []
    with httpx.Client(base_url=fuzz_server.url, timeout=30) as http:

        @settings(max_examples=300, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(REQUESTS)
        def check(request: tuple[str, Any]) -> None:
            path, body = request
            try:
                response = _send(http, path, body)
            except httpx.HTTPError as exc:
                raise AssertionError(f"{path} dropped the connection on {body!r}: {exc!r}") from exc
            seen.append((path, response.status_code))
            assert response.status_code < 500, (path, body, response.text, fuzz_server.log()[-3000:])
            assert fuzz_server.process.poll() is None, fuzz_server.log()[-3000:]

        started = time.monotonic()
        check()
        assert time.monotonic() - started < 50
        assert http.get("/api/version").status_code == 200
        answer = http.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False,
                                                  "options": {"num_predict": 2}})
        assert answer.status_code == 200, answer.text  # the runner survived too
    assert len({path for path, _ in seen}) == len(FIELDS)  # every endpoint was tried
    assert "Traceback" not in fuzz_server.log(), fuzz_server.log()[-3000:]

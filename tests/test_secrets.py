"""An API key set in LocalForge's environment reaches the upstream that needs it, and nothing
else: not a response body or header, not a log line, not a row of the database."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from conftest import free_port, stop_server
from upstreams import start_flaky, start_front, start_llama_server

CHAT = {"messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": 3}, "stream": False}


def test_the_key_never_leaves_the_upstream_call(tmp_path: Path) -> None:
    key = f"sk-lf-{uuid.uuid4().hex}"
    llama = start_llama_server(tmp_path, api_key=key)
    flaky = start_flaky(tmp_path)
    config = f"""
[openai]
backoff_s = 0.01
[[openai.endpoints]]
name = "secured"
base_url = "{llama.url}"
api_key_env = "LF_TEST_KEY"
[[openai.endpoints]]
name = "wrong"
base_url = "{llama.url}"
api_key_env = "LF_WRONG_KEY"
prefix = "wrong/"
models = ["smollm2"]
[[openai.endpoints]]
name = "echo"
base_url = "{flaky.url}"
api_key_env = "LF_TEST_KEY"
prefix = "echo/"
[[openai.endpoints]]
name = "unset"
base_url = "http://127.0.0.1:{free_port()}/v1"
api_key_env = "LF_NOT_SET"
prefix = "unset/"
models = ["smollm2"]
"""
    front = start_front(tmp_path / "front", config, log_level="debug",
                        env={"LF_TEST_KEY": key, "LF_WRONG_KEY": "not-the-key", "LF_NOT_SET": ""})
    seen: list[str] = []
    try:
        with httpx.Client(base_url=front.url, timeout=60) as http:
            def call(method: str, path: str, body: object = None) -> httpx.Response:
                response = http.request(method, path, json=body)
                seen.append(f"{response.status_code} {response.headers} {response.text}")
                return response

            ok = call("POST", "/api/chat", {"model": "smollm2", **CHAT})
            assert ok.status_code == 200 and ok.json()["message"]["content"]
            call("POST", "/api/chat", {"model": "smollm2", **CHAT, "stream": True})
            call("POST", "/api/embed", {"model": "smollm2", "input": "hi"})
            wrong = call("POST", "/api/chat", {"model": "wrong/smollm2", **CHAT})
            assert wrong.status_code == 502 and "LF_WRONG_KEY" in wrong.json()["error"]
            echoed = call("POST", "/api/chat", {"model": "echo/always500", **CHAT})
            assert echoed.status_code == 502 and "internal failure handling Bearer ***" in echoed.json()["error"]
            unset = call("POST", "/api/generate", {"model": "unset/smollm2", "prompt": "hi"})
            assert unset.status_code >= 500 and "LF_NOT_SET" in unset.json()["error"]
            for name in ("smollm2", "wrong/smollm2", "echo/ok", "unset/smollm2"):
                call("POST", "/api/show", {"model": name})
            for path in ("/api/tags", "/api/ps", "/v1/models"):
                call("GET", path)
            call("POST", "/v1/chat/completions", {"model": "echo/always500", **CHAT})
        assert httpx.get(flaky.url.removesuffix("/v1") + "/hits").json()["auth_seen"]  # the key was sent
    finally:
        stop_server(front)
        llama.stop()
        flaky.stop()

    import sqlite_utils

    db = sqlite_utils.Database(front.data_dir / "localforge.db")
    rows = [f"{table}: {row}" for table in db.table_names() for row in db[table].rows]
    assert any("echo/always500" in r for r in rows)  # the failures were recorded
    log = front.log()
    assert "/v1/chat/completions" in log  # the log did record the upstream calls
    for where, texts in (("responses", seen), ("server log", [log]), ("database", rows)):
        for text in texts:
            assert key not in text, f"the API key leaked into the {where}"
            assert key[-12:] not in text, f"part of the API key leaked into the {where}"


@pytest.mark.parametrize("section", ["openai", "ollama"])
def test_config_holds_the_name_of_the_variable_not_the_key(section: str) -> None:
    from localforge_ollama.config import parse as parse_ollama
    from localforge_openai.config import parse as parse_openai

    with pytest.raises(Exception, match="api_key"):
        if section == "openai":
            parse_openai({"endpoints": [{"name": "x", "base_url": "http://h/v1", "api_key": "sk-1"}]})
        else:
            parse_ollama({"upstreams": [{"url": "http://h:11434", "api_key": "sk-1"}]})

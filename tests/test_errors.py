"""Bad input gets a clear error in Ollama's format, never a 500 or a traceback."""

from __future__ import annotations

import httpx
import ollama
import pytest
from conftest import RunningServer


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert "Traceback" not in body["error"]
    return str(body["error"])


def test_unknown_model_is_404_with_ollamas_message(client: ollama.Client, http: httpx.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404
    assert err.value.error == "model 'no-such-model' not found"
    for path in ("/api/generate", "/api/chat", "/api/show", "/api/embed"):
        response = http.post(path, json={"model": "ghost", "prompt": "x", "messages": [], "input": "x"})
        assert response.status_code == 404 and error_of(response) == "model 'ghost' not found"


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/embed", "/api/show"])
def test_malformed_json_is_400(http: httpx.Client, path: str) -> None:
    response = http.post(path, content=b'{"model": "tiny",', headers={"content-type": "application/json"})
    assert response.status_code == 400 and "JSON" in error_of(response)


def test_missing_body_and_missing_model(http: httpx.Client) -> None:
    assert error_of(http.post("/api/generate", content=b"")) == "missing request body"
    response = http.post("/api/chat", json={"messages": []})
    assert response.status_code == 400 and error_of(response) == "model is required"


@pytest.mark.parametrize("keep_alive", ["-1", "10", "5 minutes", True, [1]])
def test_bad_keep_alive_is_400(http: httpx.Client, keep_alive: object) -> None:
    response = http.post("/api/generate", json={"model": "tiny", "prompt": "", "keep_alive": keep_alive})
    assert response.status_code == 400
    assert "duration" in error_of(response) or "keep_alive" in error_of(response)


@pytest.mark.parametrize("keep_alive", ["5m", "1h30m", "-1m", 30, 0.5, "300ms"])
def test_good_keep_alive_forms_are_accepted(http: httpx.Client, keep_alive: object) -> None:
    response = http.post("/api/generate", json={"model": "tiny", "prompt": "", "keep_alive": keep_alive})
    assert response.status_code == 200 and response.json()["done_reason"] == "load"


def test_wrong_option_type_names_the_option(http: httpx.Client) -> None:
    response = http.post("/api/generate", json={"model": "tiny", "prompt": "x",
                                                "options": {"temperature": "hot"}})
    assert response.status_code == 400 and "temperature" in error_of(response)


def test_unknown_options_are_ignored(http: httpx.Client) -> None:
    response = http.post("/api/generate", json={"model": "tiny", "prompt": "x", "stream": False, "options": {
        "num_predict": 1, "mirostat_whatever": 3, "low_vram": False, "new_topic_penalty": 1}})
    assert response.status_code == 200


def test_wrong_field_type_names_the_field(http: httpx.Client) -> None:
    response = http.post("/api/chat", json={"model": "tiny", "messages": "hello"})
    assert response.status_code == 400 and "messages" in error_of(response)


def test_unknown_route_is_a_json_404(http: httpx.Client) -> None:
    for method, path in (("GET", "/api/nothing"), ("POST", "/v2/chat"), ("GET", "/api/tags/../../etc")):
        response = http.request(method, path)
        assert response.status_code == 404 and error_of(response)


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/../../b", "/etc/passwd", "..", "x\\..\\y", "a:b/c",
                                  "tiny:../../x", "con\x00sole"])
def test_names_with_path_tricks_never_touch_the_file_system(http: httpx.Client, name: str,
                                                            server: RunningServer) -> None:
    before = sorted(p.name for p in server.models_dir.iterdir())
    for path in ("/api/show", "/api/generate", "/api/embed"):
        response = http.post(path, json={"model": name, "prompt": "x", "input": "x"})
        assert response.status_code in (400, 404)
        assert "error" in response.json()
    assert sorted(p.name for p in server.models_dir.iterdir()) == before


def test_oversized_body_is_refused(http: httpx.Client) -> None:
    huge = "x" * (65 * 1024 * 1024)
    response = http.post("/api/generate", json={"model": "tiny", "prompt": huge})
    assert response.status_code == 413 and error_of(response)


def test_bad_format_and_bad_schema(http: httpx.Client) -> None:
    response = http.post("/api/generate", json={"model": "tiny", "prompt": "x", "format": "yaml"})
    assert response.status_code == 400 and "format" in error_of(response)
    response = http.post("/api/generate", json={"model": "tiny", "prompt": "x",
                                                "format": {"type": "no-such-type"}})
    assert response.status_code == 400 and error_of(response)


def test_invalid_image_data_is_400(http: httpx.Client) -> None:
    response = http.post("/api/generate", json={"model": "tiny", "prompt": "x", "images": ["%%%not base64"]})
    assert response.status_code == 400 and "image" in error_of(response)


def test_the_server_log_has_no_unhandled_errors_after_all_that(server: RunningServer) -> None:
    assert "Traceback" not in server.log()


def test_thinking_on_a_model_that_cannot_think_is_400(http: httpx.Client) -> None:
    response = http.post("/api/chat", json={"model": "tiny", "think": True, "messages": [
        {"role": "user", "content": "hi"}]})
    assert response.status_code == 400 and error_of(response) == '"tiny:latest" does not support thinking'
    ok = http.post("/api/chat", json={"model": "tiny", "think": False, "stream": False, "options": {"num_predict": 1},
                                      "messages": [{"role": "user", "content": "hi"}]})
    assert ok.status_code == 200

"""Browsers may call LocalForge from the origins Ollama allows, and no others."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:8080", "app://obsidian.md",
                                    "vscode-webview://abc"])
def test_allowed_origins_get_cors_headers(http: httpx.Client, origin: str) -> None:
    response = http.options("/api/chat", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization,x-localforge-priority"})
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == origin
    assert "x-localforge-priority" in response.headers["access-control-allow-headers"].lower()


def test_other_origins_are_not_allowed(http: httpx.Client) -> None:
    response = http.get("/api/tags", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


EVIL = "https://evil.example"


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/plain", '{"model":"tiny","prompt":"hi","options":{"num_batch":-1}}'),
    ("application/x-www-form-urlencoded", "model=tiny&prompt=hi"),
    ("multipart/form-data; boundary=x", "--x--"),
])
def test_cross_site_posts_are_refused_before_any_work(http: httpx.Client, content_type: str, body: str) -> None:
    """A page may send these without a preflight, and the browser delivers them (issue 15)."""
    for path in ("/api/generate", "/api/copy", "/v1/chat/completions", "/api/pull"):
        response = http.post(path, content=body, headers={"Origin": EVIL, "Content-Type": content_type})
        assert response.status_code == 403
        error = response.json()["error"]
        assert "not allowed" in (error["message"] if path.startswith("/v1/") else error)


def test_a_cross_site_copy_creates_nothing(http: httpx.Client) -> None:
    response = http.post("/api/copy", content='{"source":"tiny","destination":"planted"}',
                         headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert response.status_code == 403
    assert http.post("/api/show", json={"model": "planted"}).status_code == 404
    assert http.get("/api/tags", headers={"Origin": "null"}).status_code == 403


def test_allowed_origins_and_clients_without_origin_are_served(http: httpx.Client) -> None:
    body = {"model": "tiny", "prompt": "", "stream": False}
    assert http.post("/api/generate", json=body).status_code == 200
    for origin in ("http://localhost:3000", "app://obsidian.md"):
        response = http.post("/api/generate", json=body, headers={"Origin": origin})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin


def test_configured_origins_may_be_globs() -> None:
    from localforge.server.origins import allows

    pattern = allows(["https://*.example.com", "https://chat.example.org"])
    assert pattern.fullmatch("https://app.example.com")
    assert pattern.fullmatch("https://chat.example.org")
    assert pattern.fullmatch("http://127.0.0.1:5173")
    assert not pattern.fullmatch("https://example.com.evil.net")
    assert not pattern.fullmatch("https://chat.example.org.evil.net")
    assert allows(["*"]).fullmatch("https://anything.example")

"""Browsers may call LocalForge from the origins Ollama allows, and no others."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:8080", "app://obsidian.md",
                                    "vscode-webview://abc"])
def test_allowed_origins_get_cors_headers(http: httpx.Client, origin: str) -> None:
    response = http.options("/api/chat", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization"})
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == origin


def test_other_origins_are_not_allowed(http: httpx.Client) -> None:
    response = http.get("/api/tags", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers

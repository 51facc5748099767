"""Browser pages of other origins cannot act: a request whose `Origin` is not allowed is refused
with 403 before it is routed, its body read or any work done.

CORS headers alone do not protect a local server: a page may send a `text/plain` or form POST
without a preflight, and the browser delivers it; only reading the answer is blocked. Clients
that are not browsers (curl, the SDKs, editors) send no `Origin` and are unaffected. The allowed
list is Ollama's: localhost, 127.0.0.1, 0.0.0.0 and [::1] on any port, the app schemes, plus
`OLLAMA_ORIGINS` / `origins` (exact origins, `*` for any, or globs like `https://*.example.com`).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

# Ollama's envconfig.AllowedOrigins: localhost, 127.0.0.1 and 0.0.0.0 on any port, app schemes
ORIGIN_REGEX = (r"^(https?://(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(:\d+)?"
                r"|app://.*|file://.*|tauri://.*|vscode-webview://.*)$")


def allows(extra: list[str]) -> re.Pattern[str]:
    """One pattern for every allowed origin: Ollama's defaults and the configured ones."""
    configured = [fnmatch.translate(o.strip().rstrip("/")) for o in extra if o.strip()]
    return re.compile("|".join([ORIGIN_REGEX, *configured]))


def refuse_other_origins(extra: list[str]) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware factory (Litestar's `middleware=[...]`)."""
    allowed = allows(extra)

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                origin = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"), None)
                if origin is not None and not allowed.fullmatch(origin):
                    await forbid(scope, send, f"origin {origin[:200]!r} is not allowed; add it to "
                                 "OLLAMA_ORIGINS (or `origins` in the config) to let that page use "
                                 "LocalForge", "origin_not_allowed")
                    return
            await app(scope, receive, send)

        return middleware

    return wrap


async def forbid(scope: Scope, send: Send, message: str, code: str) -> None:
    """A 403 in the client's error format (Ollama's `{"error"}`, an OpenAI error object under
    /v1), sent by a middleware before the request reaches the app."""
    if str(scope.get("path", "")).startswith("/v1/"):
        payload: dict[str, object] = {"error": {"message": message, "type": "invalid_request_error",
                                                "param": None, "code": code}}
    else:
        payload = {"error": message}
    body = json.dumps(payload).encode()
    start: Any = {"type": "http.response.start", "status": 403,
                  "headers": [(b"content-type", b"application/json"),
                              (b"content-length", str(len(body)).encode())]}
    await send(start)
    end: Any = {"type": "http.response.body", "body": body}
    await send(end)

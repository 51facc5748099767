"""Every error leaves as the client expects it: `{"error": "..."}` on Ollama's API, OpenAI's error
object under /v1. Nothing leaves as a traceback."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException

from localforge.errors import LocalForgeError, ModelNotFound, ServerBusy, Unauthorized

log = logging.getLogger(__name__)


def openai_error(message: str, kind: str, status: int, code: str | None = None) -> dict[str, Any]:
    code = code or {429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _respond(request: Request, status: int, message: str, kind: str,
             headers: dict[str, str] | None = None, code: str | None = None) -> Response[Any]:
    if request.url.path.startswith("/v1/"):
        content: dict[str, Any] = openai_error(message, kind, status, code)
    else:
        content = {"error": message}
    return Response(content, status_code=status, headers=headers, media_type="application/json")


def handle_localforge(request: Request, exc: Exception) -> Response[Any]:
    assert isinstance(exc, LocalForgeError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServerBusy) else None
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
    # only a missing model is "model_not_found"; an unknown route or blob is another 404
    code = ("model_not_found" if isinstance(exc, ModelNotFound)
            else "invalid_api_key" if isinstance(exc, Unauthorized) else None)
    return _respond(request, exc.status, exc.message, exc.openai_type, headers, code)


def handle_http(request: Request, exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, NotFoundException):
        return _respond(request, 404, "404 page not found", "not_found_error")
    if exc.status_code == 405:
        return _respond(request, 405, "405 method not allowed", "invalid_request_error")
    if exc.status_code == 413:
        return _respond(request, 413, "request body is too large", "invalid_request_error")
    kind = "invalid_request_error" if exc.status_code < 500 else "api_error"
    return _respond(request, exc.status_code, str(exc.detail), kind)


def handle_unexpected(request: Request, exc: Exception) -> Response[Any]:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return _respond(request, 500, "internal error; see the server log", "api_error")


HANDLERS = {LocalForgeError: handle_localforge, HTTPException: handle_http, Exception: handle_unexpected}

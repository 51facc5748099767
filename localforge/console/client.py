"""Requests from the command line to a running server, as the `ollama` command makes them.

The server is `--host`, else `OLLAMA_HOST`, else 127.0.0.1:11434; `LOCALFORGE_API_KEY` (its first
key) is sent as a bearer token. Every failure ends the command with `Error: <message>` on stderr
and a non-zero status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from localforge.config import DEFAULT_PORT, parse_ollama_host
from localforge.lines import lines

HOST_HELP = "server URL (default from OLLAMA_HOST, else 127.0.0.1:11434)"


class Failed(SystemExit):
    """The command cannot go on; the message is what the user sees."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(f"Error: {message}")
        self.message = message
        self.status = status


def server_url(args: argparse.Namespace) -> str:
    if getattr(args, "host", None):
        return args.host.rstrip("/") if "://" in args.host else f"http://{args.host}"
    host, port = parse_ollama_host(os.environ.get("OLLAMA_HOST", f"127.0.0.1:{DEFAULT_PORT}"))
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def headers() -> dict[str, str]:
    key = os.environ.get("LOCALFORGE_API_KEY", "").split(",")[0].strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _unreachable(args: argparse.Namespace, exc: Exception) -> Failed:
    return Failed(f"could not reach LocalForge at {server_url(args)}: {exc}")


def _error_of(response: httpx.Response) -> Failed:
    try:
        message = response.json().get("error", response.text)
    except ValueError:
        message = response.text
    return Failed(str(message), response.status_code)


def call(args: argparse.Namespace, method: str, path: str, body: Any = None, timeout: float | None = 30) -> Any:
    """One request; the JSON answer (None for an empty body)."""
    try:
        response = httpx.request(method, server_url(args) + path, json=body, headers=headers(), timeout=timeout)
    except httpx.HTTPError as exc:
        raise _unreachable(args, exc) from exc
    if response.status_code >= 400:
        raise _error_of(response)
    return response.json() if response.content.strip() else None


@contextmanager
def stream(args: argparse.Namespace, path: str, body: Any) -> Iterator[tuple[httpx.Response, Iterator[dict[str, Any]]]]:
    """A streamed NDJSON answer: the response (for its headers) and its objects; an `error`
    line ends the command. Closing early (Ctrl-C) closes the connection, which stops the server."""
    try:
        with (httpx.Client(timeout=httpx.Timeout(None, connect=10), headers=headers()) as http,
              http.stream("POST", server_url(args) + path, json=body) as response):
            if response.status_code >= 400:
                response.read()
                raise _error_of(response)
            yield response, _objects(response)
    except httpx.HTTPError as exc:
        raise _unreachable(args, exc) from exc


def _objects(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in lines(response.iter_bytes()):
        if not line.strip():
            continue
        item = json.loads(line)
        if "error" in item:
            raise Failed(str(item["error"]))
        yield item


def upload(args: argparse.Namespace, path: Path, digest: str, chunks: Iterator[bytes]) -> None:
    """POST a file to /api/blobs/<digest>, streamed."""
    try:
        response = httpx.post(f"{server_url(args)}/api/blobs/{digest}", content=chunks, headers=headers(),
                              timeout=httpx.Timeout(None, connect=10))
    except httpx.HTTPError as exc:
        raise _unreachable(args, exc) from exc
    if response.status_code >= 400:
        raise _error_of(response)


def has_blob(args: argparse.Namespace, digest: str) -> bool:
    try:
        response = httpx.head(f"{server_url(args)}/api/blobs/{digest}", headers=headers(), timeout=30)
    except httpx.HTTPError as exc:
        raise _unreachable(args, exc) from exc
    return response.status_code == 200

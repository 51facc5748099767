"""Noticing that a client went away while its request waits in a queue.

The controllers await the first event of an answer before they start streaming, so a request that
waits in the scheduler's queue has no response yet and Litestar is not listening for the client.
This ASGI middleware remembers each HTTP request's `receive` channel in a context variable (it is
per-request state, carried by the request's own task and the tasks it spawns), and
`until_disconnected` waits on it. It is only used after the body has been read, so the only
message left to receive is `http.disconnect`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import anyio
from litestar.types import ASGIApp, Receive, Scope, Send

_receive: ContextVar[Receive | None] = ContextVar("localforge_receive", default=None)


def watch_disconnect(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        token = _receive.set(receive)
        try:
            await app(scope, receive, send)
        finally:
            _receive.reset(token)

    return middleware


async def until_disconnected() -> None:
    """Return when the current HTTP client disconnects; never, outside an HTTP request."""
    receive = _receive.get()
    if receive is None:
        await anyio.sleep_forever()
        return
    while True:
        message: Any = await receive()
        if message.get("type") == "http.disconnect":
            return

"""Streaming answers: NDJSON for Ollama's API, server-sent events for OpenAI's.

The first event is awaited before the response starts, so an error that happens before any
output (unknown model, bad schema, busy queue) gets its real status; after that an error can only
be reported inside the stream, as Ollama does with an `{"error": ...}` line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar.response import Stream

from localforge.errors import LocalForgeError
from localforge.inference import Event

log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"


async def with_first(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """Pull the first event now (raising errors here), then yield it and the rest."""
    first = await anext(events)

    async def chained() -> AsyncIterator[Event]:
        yield first
        async for event in events:
            yield event

    return chained()


def error_message(exc: BaseException) -> str:
    if isinstance(exc, LocalForgeError):
        return exc.message
    log.exception("error while streaming", exc_info=exc)
    return "internal error while generating; see the server log"


async def _ndjson(events: AsyncIterator[Event], encode: Callable[[Event], Any]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            chunk = encode(event)
            if chunk is not None:
                yield msgspec.json.encode(chunk) + b"\n"
    except Exception as exc:
        yield msgspec.json.encode({"error": error_message(exc)}) + b"\n"


def ndjson(events: AsyncIterator[Event], encode: Callable[[Event], Any],
           headers: dict[str, str]) -> Stream:
    return Stream(_ndjson(events, encode), media_type=NDJSON, headers=headers)


async def _sse(events: AsyncIterator[Event], encode: Callable[[Event], list[Any]],
               error: Callable[[str], Any]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            for chunk in encode(event):
                yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
    except Exception as exc:
        yield b"data: " + msgspec.json.encode(error(error_message(exc))) + b"\n\n"
    yield b"data: [DONE]\n\n"


def sse(events: AsyncIterator[Event], encode: Callable[[Event], list[Any]],
        error: Callable[[str], Any], headers: dict[str, str]) -> Stream:
    return Stream(_sse(events, encode, error), media_type="text/event-stream",
                  headers={**headers, "Cache-Control": "no-cache"})

"""Streaming answers: NDJSON for Ollama's API, server-sent events for OpenAI's.

The first event is awaited before the response starts, so an error that happens before any
output (unknown model, bad schema, busy queue) gets its real status; after that an error can only
be reported inside the stream, as Ollama does with an `{"error": ...}` line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from litestar.response import Stream

from localforge.errors import LocalForgeError
from localforge.inference import Delta, Event, Final, Inference, ToolCall, unless_disconnected
from localforge.lines import escaped

if TYPE_CHECKING:
    from localforge.pipeline import Served
    from localforge.server.services import Services

log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"
T = TypeVar("T")


async def with_first(items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Pull the first item now (raising errors here), then yield it and the rest."""
    first = await anext(items)

    async def chained() -> AsyncIterator[T]:
        yield first
        async for item in items:
            yield item

    return chained()


async def start(services: Services, inference: Inference, endpoint: str) -> Served:
    """Send a request down the pipeline and wait for its first event."""
    served = await services.pipeline.run(inference, endpoint)
    served.events = await with_first(served.events)
    return served


@dataclass(slots=True)
class Answer:
    """A whole answer, for `stream: false`."""

    text: str = ""
    thinking: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    final: Final = field(default_factory=Final)


async def collect(events: AsyncIterator[Event]) -> Answer:
    text: list[str] = []
    thinking: list[str] = []
    answer = Answer()
    async for event in events:
        if isinstance(event, Delta):
            text.append(event.text)
            thinking.append(event.thinking)
            answer.calls.extend(event.tool_calls)
        else:
            answer.final = event
    answer.text, answer.thinking = "".join(text), "".join(thinking)
    return answer


async def whole(services: Services, inference: Inference, endpoint: str) -> tuple[Served, Answer]:
    """A `stream: false` answer, generated whole; if the client goes away meanwhile, generation
    stops (the request is recorded as canceled) instead of running on for nobody."""
    async def run() -> tuple[Served, Answer]:
        served = await start(services, inference, endpoint)
        return served, await collect(served.events)

    return await unless_disconnected(inference.until_disconnected, run)


def error_message(exc: BaseException) -> str:
    if isinstance(exc, LocalForgeError):
        return exc.message
    log.exception("error while streaming", exc_info=exc)
    return "internal error while generating; see the server log"


def _json(chunk: Any) -> bytes:
    """One streamed object; line separators other than "\\n" escaped, so clients that split lines
    as str.splitlines does (httpx, and so the `ollama` package) still get it whole."""
    return escaped(msgspec.json.encode(chunk))


async def _ndjson(items: AsyncIterator[T], encode: Callable[[T], Any]) -> AsyncIterator[bytes]:
    try:
        async for item in items:
            chunk = encode(item)
            if chunk is not None:
                yield _json(chunk) + b"\n"
    except Exception as exc:
        yield _json({"error": error_message(exc)}) + b"\n"


def ndjson(items: AsyncIterator[T], encode: Callable[[T], Any], headers: dict[str, str] | None = None) -> Stream:
    return Stream(_ndjson(items, encode), media_type=NDJSON, headers=headers)


async def _sse(events: AsyncIterator[Event], encode: Callable[[Event], list[Any]],
               error: Callable[[str], Any]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            for chunk in encode(event):
                yield b"data: " + _json(chunk) + b"\n\n"
    except Exception as exc:
        yield b"data: " + _json(error(error_message(exc))) + b"\n\n"
    yield b"data: [DONE]\n\n"


def sse(events: AsyncIterator[Event], encode: Callable[[Event], list[Any]],
        error: Callable[[str], Any], headers: dict[str, str]) -> Stream:
    return Stream(_sse(events, encode, error), media_type="text/event-stream",
                  headers={**headers, "Cache-Control": "no-cache"})

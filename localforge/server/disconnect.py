"""Noticing that an HTTP client went away, handed to the pipeline with its request.

The controllers await the first event of an answer before they start streaming, and a
`stream: false` answer is generated whole before anything is sent, so during both Litestar is
not listening for the client. `watch(request)` makes the signal a request carries
(`Inference.until_disconnected`): the scheduler waits on it while the request is queued, and
`unless_disconnected` runs a whole non-streamed answer against it. Background work (the judge)
builds its own requests, which carry no signal and so are never taken for a gone client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from litestar import Request

from localforge.errors import Canceled
from localforge.inference import UntilDisconnected

T = TypeVar("T")


def watch(request: Request[Any, Any, Any]) -> UntilDisconnected:
    """A wait that returns when this request's client disconnects. Only for use after the body
    has been read and before the response starts: the only message left is `http.disconnect`."""
    receive = request.receive

    async def until_disconnected() -> None:
        while True:
            message: Any = await receive()
            if message.get("type") == "http.disconnect":
                return

    return until_disconnected


async def unless_disconnected(until_disconnected: UntilDisconnected | None,
                              work: Callable[[], Awaitable[T]]) -> T:
    """Run `work`; if the client goes away first, cancel it (a backend stops generating) and
    raise Canceled."""
    if until_disconnected is None:
        return await work()
    result: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as tg:
        async def watcher() -> None:
            await until_disconnected()
            tg.cancel_scope.cancel()

        tg.start_soon(watcher)
        try:
            result.append(await work())
        except Exception as exc:  # raised below, not wrapped in the task group's ExceptionGroup
            failure.append(exc)
        tg.cancel_scope.cancel()
    if failure:
        raise failure[0]
    if not result:
        raise Canceled("the client disconnected")
    return result[0]

"""Noticing that an HTTP client went away, handed to the pipeline with its request.

The controllers await the first event of an answer before they start streaming, and a
`stream: false` answer is generated whole before anything is sent, so during both Litestar is
not listening for the client. `watch(request)` makes the signal a request carries
(`Inference.until_disconnected`): the scheduler waits on it while the request is queued, and
`inference.unless_disconnected` runs a whole non-streamed answer against it. Background work (the judge)
builds its own requests, which carry no signal and so are never taken for a gone client.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from localforge.inference import UntilDisconnected


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

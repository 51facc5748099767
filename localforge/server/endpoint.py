"""The one shape of an inference endpoint, whatever its wire format.

Read the body as the endpoint's wire type, convert it to an `Inference` that carries its
client's disconnect signal and cache scope, then either stream the answer (once its first event
is in, so early errors keep their status) or generate it whole and answer with one object. Each
endpoint brings its own pieces: the wire type, the conversion, and how it writes a stream and a
whole answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from litestar import Request, Response
from litestar.response import Stream

from localforge.inference import Inference
from localforge.server import body, disconnect, streams
from localforge.server.services import Services, client_address, scope_of, standing_of

if TYPE_CHECKING:
    from localforge.pipeline import Served

W = TypeVar("W")


async def answer(request: Request, services: Services, path: str, kind: type[W],
                 convert: Callable[[W, str], Inference],
                 stream: Callable[[W, Inference, Served], Stream],
                 whole: Callable[[W, Inference, streams.Answer], Any]) -> Response[Any] | Stream:
    """Serve one inference request at `path`: `convert` turns the wire request (and the client's
    address) into an `Inference`; `stream` writes a streamed answer from the pipeline's events,
    `whole` builds the reply of a whole one."""
    req = await body.read(request, kind, services.settings.max_body_bytes)
    inference = convert(req, client_address(request))
    inference.until_disconnected = disconnect.watch(request)
    inference.scope = scope_of(request, services)
    inference.priority, inference.daily_budget = standing_of(request, services)
    if inference.stream:
        return stream(req, inference, await streams.start(services, inference, path))
    served, done = await streams.whole(services, inference, path)
    return Response(whole(req, inference, done), headers=served.headers)

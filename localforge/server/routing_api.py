"""The `auto` model's own endpoints: POST /api/route (a dry run) and POST /api/feedback."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, post

from localforge.errors import BadRequest, Unavailable
from localforge.inference import Inference, Message
from localforge.route import auto
from localforge.route.auto import Routing
from localforge.server import body
from localforge.server.services import Services, scope_of, standing_of


class RouteMessage(msgspec.Struct):
    role: str
    content: str = ""


class RouteRequest(msgspec.Struct):
    """A chat (`messages`) or generate (`prompt`) request, as it would be sent to `auto`."""

    model: str = "auto"
    prompt: str = ""
    messages: list[RouteMessage] = []
    system: str | None = None
    tools: list[dict[str, Any]] = []


class FeedbackRequest(msgspec.Struct):
    request_id: str
    score: float | None = None
    thumbs: Literal["up", "down"] | None = None


class FeedbackResponse(msgspec.Struct):
    request_id: str
    model: str
    score: float


def _routing(services: Services) -> Routing:
    routing = services.pipeline.routing
    if routing is None:
        raise Unavailable("the auto model is off: no embedder is available (see the server log)")
    return routing


@post("/api/route", status_code=200)
async def route(request: Request, services: Services) -> dict[str, Any]:
    req = await body.read(request, RouteRequest, services.settings.max_body_bytes)
    preset = auto.preset_of(req.model)
    if preset is None:
        raise BadRequest(f"model must be 'auto' or 'auto:<preset>', not '{req.model}'")
    if req.messages:
        inference = Inference(model=req.model, kind="chat", system=req.system, tools=req.tools,
                              messages=[Message(m.role, m.content) for m in req.messages])
    else:
        inference = Inference(model=req.model, kind="generate", prompt=req.prompt, system=req.system,
                              tools=req.tools)
    inference.scope = scope_of(request, services)  # the caller's own memory, as its requests get
    inference.priority, inference.daily_budget = standing_of(request, services)
    routed = await _routing(services).route(inference, preset, dry_run=True)
    return auto.explain(routed)


@post("/api/feedback", status_code=200)
async def feedback(request: Request, services: Services) -> FeedbackResponse:
    req = await body.read(request, FeedbackRequest, services.settings.max_body_bytes)
    if (req.score is None) == (req.thumbs is None):
        raise BadRequest('give either "score" (0..1) or "thumbs" ("up" or "down")')
    score = req.score if req.score is not None else (1.0 if req.thumbs == "up" else 0.0)
    model = await _routing(services).feedback(req.request_id, score)
    return FeedbackResponse(req.request_id, model, score)


ROUTES = [route, feedback]

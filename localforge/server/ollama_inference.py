"""POST /api/generate, /api/chat, /api/embed and /api/embeddings."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, post
from litestar.response import Stream

from localforge.errors import BadRequest
from localforge.inference import Event, Final, Inference, ToolCall
from localforge.server import body, disconnect, endpoint, ollama_convert, ollama_wire, streams, timefmt
from localforge.server.services import Services, client_address

if TYPE_CHECKING:
    from localforge.pipeline import Served


def _wire_calls(calls: list[ToolCall]) -> list[ollama_wire.WireToolCall]:
    return [ollama_wire.WireToolCall(id=c.id, function=ollama_wire.WireToolFunction(
        name=c.name, arguments=c.arguments, index=c.index)) for c in calls]


def _metrics(final: Final) -> dict[str, Any]:
    return {"done_reason": final.done_reason, "total_duration": final.total_ns,
            "load_duration": final.load_ns, "prompt_eval_count": final.prompt_tokens,
            "prompt_eval_duration": final.prompt_ns, "eval_count": final.eval_tokens,
            "eval_duration": final.eval_ns}


def _generate_chunk(inference: Inference, event: Event) -> ollama_wire.GenerateChunk:
    if isinstance(event, Final):
        return ollama_wire.GenerateChunk(model=inference.model, created_at=timefmt.now(), response="",
                                         done=True, context=event.context, request_id=inference.request_id,
                                         **_metrics(event))
    return ollama_wire.GenerateChunk(model=inference.model, created_at=timefmt.now(),
                                     response=event.text, thinking=event.thinking or None, done=False)


def _chat_chunk(inference: Inference, event: Event) -> ollama_wire.ChatChunk:
    if isinstance(event, Final):
        return ollama_wire.ChatChunk(model=inference.model, created_at=timefmt.now(),
                                     message=ollama_wire.ReplyMessage(role="assistant", content=""), done=True,
                                     request_id=inference.request_id, **_metrics(event))
    message = ollama_wire.ReplyMessage(role="assistant", content=event.text, thinking=event.thinking or None,
                                      tool_calls=_wire_calls(event.tool_calls) or None)
    return ollama_wire.ChatChunk(model=inference.model, created_at=timefmt.now(), message=message, done=False)


def _generate_stream(_: ollama_wire.GenerateRequest, inference: Inference, served: Served) -> Stream:
    return streams.ndjson(served.events, lambda e: _generate_chunk(inference, e), served.headers)


def _generate_whole(_: ollama_wire.GenerateRequest, inference: Inference,
                    answer: streams.Answer) -> ollama_wire.GenerateChunk:
    chunk = _generate_chunk(inference, answer.final)
    chunk.response, chunk.thinking = answer.text, answer.thinking or None
    return chunk


@post("/api/generate", status_code=200)
async def generate(request: Request, services: Services) -> Response[Any] | Stream:
    return await endpoint.answer(request, services, "/api/generate", ollama_wire.GenerateRequest,
                                 ollama_convert.generate, _generate_stream, _generate_whole)


def _chat_stream(_: ollama_wire.ChatRequest, inference: Inference, served: Served) -> Stream:
    return streams.ndjson(served.events, lambda e: _chat_chunk(inference, e), served.headers)


def _chat_whole(_: ollama_wire.ChatRequest, inference: Inference, answer: streams.Answer) -> ollama_wire.ChatChunk:
    chunk = _chat_chunk(inference, answer.final)
    chunk.message = ollama_wire.ReplyMessage(role="assistant", content=answer.text, thinking=answer.thinking or None,
                                             tool_calls=_wire_calls(answer.calls) or None)
    return chunk


@post("/api/chat", status_code=200)
async def chat(request: Request, services: Services) -> Response[Any] | Stream:
    return await endpoint.answer(request, services, "/api/chat", ollama_wire.ChatRequest,
                                 ollama_convert.chat, _chat_stream, _chat_whole)


def normalise(vector: list[float], dimensions: int | None = None) -> list[float]:
    if dimensions:
        vector = vector[:dimensions]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


@post("/api/embed", status_code=200)
async def embed(request: Request, services: Services) -> ollama_wire.EmbedResponse:
    req = await body.read(request, ollama_wire.EmbedRequest, services.settings.max_body_bytes)
    # Ollama's: an empty string is no input at all (an empty string in a list is refused)
    texts = ([req.input] if req.input else []) if isinstance(req.input, str) else list(req.input or [])
    if req.dimensions is not None and req.dimensions <= 0:
        raise BadRequest("dimensions must be a positive number")
    inference = Inference(model=ollama_convert.model_name(req.model, ""), kind="generate",
                          options=ollama_convert.opts.validate(req.options),
                          keep_alive=ollama_convert.keep_alive_seconds(req.keep_alive),
                          client=client_address(request), until_disconnected=disconnect.watch(request))
    if not texts:
        await services.registry.resolve(inference.model)
        return ollama_wire.EmbedResponse(model=inference.model, embeddings=[])
    _, result = await services.pipeline.embed(inference, texts, req.truncate is not False, "/api/embed")
    return ollama_wire.EmbedResponse(
        model=inference.model, embeddings=[normalise(v, req.dimensions) for v in result.vectors],
        total_duration=result.total_ns, load_duration=result.load_ns,
        prompt_eval_count=result.prompt_tokens)


@post("/api/embeddings", status_code=200)
async def embeddings(request: Request, services: Services) -> ollama_wire.LegacyEmbedResponse:
    req = await body.read(request, ollama_wire.LegacyEmbedRequest, services.settings.max_body_bytes)
    inference = Inference(model=ollama_convert.model_name(req.model, ""), kind="generate",
                          options=ollama_convert.opts.validate(req.options),
                          keep_alive=ollama_convert.keep_alive_seconds(req.keep_alive),
                          client=client_address(request), until_disconnected=disconnect.watch(request))
    if not req.prompt:
        await services.registry.resolve(inference.model)
        return ollama_wire.LegacyEmbedResponse(embedding=[])
    _, result = await services.pipeline.embed(inference, [req.prompt], True, "/api/embeddings")
    return ollama_wire.LegacyEmbedResponse(embedding=result.vectors[0])


ROUTES = [generate, chat, embed, embeddings]

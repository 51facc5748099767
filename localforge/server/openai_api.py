"""OpenAI-compatible API under /v1: chat and text completions, models, embeddings.

Each request becomes an `Inference` and goes through the same pipeline as Ollama's native API;
only the wire format differs. Answers stream as server-sent events when `stream` is true (the
default is false, as in OpenAI's API), ending with `data: [DONE]`.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from litestar import Request, Response, get, post
from litestar.response import Stream

from localforge.errors import BadRequest
from localforge.inference import Delta, Event, Final, Inference, ToolCall
from localforge.server import body, disconnect, endpoint, errors, ollama_convert, streams
from localforge.server import openai_convert as oc
from localforge.server import openai_wire as ow
from localforge.server.ollama_inference import normalise
from localforge.server.services import Services, client_address

if TYPE_CHECKING:
    from localforge.pipeline import Served


def _usage(final: Final) -> ow.Usage:
    """OpenAI counts the whole prompt, and the part its cache served apart."""
    prompt = final.prompt_tokens + final.cached_tokens
    return ow.Usage(prompt_tokens=prompt, completion_tokens=final.eval_tokens,
                    total_tokens=prompt + final.eval_tokens,
                    prompt_tokens_details=ow.PromptTokensDetails(final.cached_tokens) if final.cached_tokens else None)


def _stream_error(message: str) -> dict[str, Any]:
    return errors.openai_error(message, "api_error", 500)


def _include_usage(req: ow.Sampling) -> bool:
    return bool(req.stream_options and req.stream_options.include_usage)


class ChatStream:
    """Turns pipeline events into chat.completion.chunk objects; the role goes in the first."""

    def __init__(self, inference: Inference, include_usage: bool) -> None:
        self.id = f"chatcmpl-{inference.request_id}"
        self.created = int(time.time())
        self.model = inference.model
        self.include_usage = include_usage
        self.role_sent = False
        self.calls: list[ToolCall] = []

    def _chunk(self, delta: ow.ChunkDelta | None, finish: str | None = None,
               usage: ow.Usage | None = None) -> ow.ChatCompletionChunk:
        choices = [] if delta is None else [
            ow.ChunkChoice(index=0, delta=delta, finish_reason=finish)]
        return ow.ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                      choices=choices, usage=usage)

    def _role(self) -> str | None:
        sent, self.role_sent = self.role_sent, True
        return None if sent else "assistant"

    def encode(self, event: Event) -> list[ow.ChatCompletionChunk]:
        if isinstance(event, Delta):
            self.calls.extend(event.tool_calls)
            if not (event.text or event.thinking or event.tool_calls) and self.role_sent:
                return []
            calls = oc.tool_calls(event.tool_calls, with_index=True) or None
            delta = ow.ChunkDelta(role=self._role(), content=event.text or None,
                                  reasoning=event.thinking or None, tool_calls=calls)
            return [self._chunk(delta)]
        out = [] if self.role_sent else [self._chunk(ow.ChunkDelta(role="assistant", content=""))]
        out.append(self._chunk(ow.ChunkDelta(), oc.finish_reason(event.done_reason, self.calls)))
        if self.include_usage:
            out.append(self._chunk(None, usage=_usage(event)))
        return out


def _chat_stream(req: ow.ChatCompletionRequest, inference: Inference, served: Served) -> Stream:
    state = ChatStream(inference, _include_usage(req))
    return streams.sse(served.events, state.encode, _stream_error, served.headers)


def _chat_whole(_: ow.ChatCompletionRequest, inference: Inference,
                answer: streams.Answer) -> ow.ChatCompletion:
    text, calls, final = answer.text, answer.calls, answer.final
    message = ow.AssistantMessage(role="assistant", content=None if calls and not text else text,
                                  reasoning=answer.thinking or None, tool_calls=oc.tool_calls(calls) or None)
    choice = ow.ChatChoice(index=0, message=message,
                           finish_reason=oc.finish_reason(final.done_reason, calls))
    return ow.ChatCompletion(id=f"chatcmpl-{inference.request_id}", created=int(time.time()),
                             model=inference.model, choices=[choice], usage=_usage(final))


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request, services: Services) -> Response[Any] | Stream:
    return await endpoint.answer(request, services, "/v1/chat/completions", ow.ChatCompletionRequest,
                                 oc.chat, _chat_stream, _chat_whole)


class CompletionStream:
    """Turns pipeline events into text_completion chunks; `echo` puts the prompt first."""

    def __init__(self, inference: Inference, include_usage: bool, echo: bool) -> None:
        self.id = f"cmpl-{inference.request_id}"
        self.created = int(time.time())
        self.model = inference.model
        self.include_usage = include_usage
        self.pending_echo = inference.prompt if echo else ""

    def _chunk(self, text: str | None, finish: str | None = None,
               usage: ow.Usage | None = None) -> ow.Completion:
        choices = [] if text is None else [
            ow.CompletionChoice(index=0, text=text, finish_reason=finish)]
        return ow.Completion(id=self.id, created=self.created, model=self.model, choices=choices,
                             usage=usage)

    def encode(self, event: Event) -> list[ow.Completion]:
        echo, self.pending_echo = self.pending_echo, ""
        if isinstance(event, Delta):
            return [self._chunk(echo + event.text)] if echo or event.text else []
        out = [self._chunk(echo)] if echo else []
        out.append(self._chunk("", oc.finish_reason(event.done_reason, [])))
        if self.include_usage:
            out.append(self._chunk(None, usage=_usage(event)))
        return out


def _completion_stream(req: ow.CompletionRequest, inference: Inference, served: Served) -> Stream:
    state = CompletionStream(inference, _include_usage(req), bool(req.echo))
    return streams.sse(served.events, state.encode, _stream_error, served.headers)


def _completion_whole(req: ow.CompletionRequest, inference: Inference,
                      answer: streams.Answer) -> ow.Completion:
    text, final = answer.text, answer.final
    if req.echo:
        text = inference.prompt + text
    choice = ow.CompletionChoice(index=0, text=text,
                                 finish_reason=oc.finish_reason(final.done_reason, []))
    return ow.Completion(id=f"cmpl-{inference.request_id}", created=int(time.time()),
                         model=inference.model, choices=[choice], usage=_usage(final))


@post("/v1/completions", status_code=200)
async def completions(request: Request, services: Services) -> Response[Any] | Stream:
    return await endpoint.answer(request, services, "/v1/completions", ow.CompletionRequest,
                                 oc.completion, _completion_stream, _completion_whole)


def _model(name: str, modified_at: datetime | None) -> ow.Model:
    return ow.Model(id=name, created=int(modified_at.timestamp() if modified_at else time.time()))


@get("/v1/models")
async def list_models(services: Services) -> ow.ModelList:
    return ow.ModelList(data=[_model(c.name, c.modified_at) for c in await services.registry.listed()])


@get("/v1/models/{model:path}")
async def retrieve_model(model: str, services: Services) -> ow.Model:
    name = model.lstrip("/")
    return _model(name, (await services.registry.find(name)).card.modified_at)


def _encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        # the SDKs decode little-endian float32, whatever the machine's byte order
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


@post("/v1/embeddings", status_code=200)
async def embeddings(request: Request, services: Services) -> ow.EmbeddingList:
    req = await body.read(request, ow.EmbeddingRequest, services.settings.max_body_bytes)
    encoding = req.encoding_format or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest(f"encoding_format must be \"float\" or \"base64\", not '{encoding}'")
    if req.dimensions is not None and req.dimensions <= 0:
        raise BadRequest("dimensions must be a positive number")
    texts = oc.embedding_input(req.input)
    inference = Inference(model=ollama_convert.model_name(req.model, ""), kind="generate",
                          client=client_address(request), until_disconnected=disconnect.watch(request))
    _, result = await services.pipeline.embed(inference, texts, True, "/v1/embeddings")
    data = [ow.EmbeddingData(index=i, embedding=_encode_vector(normalise(v, req.dimensions),
                                                               encoding))
            for i, v in enumerate(result.vectors)]
    return ow.EmbeddingList(data=data, model=inference.model,
                            usage=ow.EmbeddingUsage(prompt_tokens=result.prompt_tokens,
                                                    total_tokens=result.prompt_tokens))


ROUTES = [chat_completions, completions, list_models, retrieve_model, embeddings]

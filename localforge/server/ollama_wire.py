"""Ollama's wire types, exactly as clients send and expect them (see shared/ollama-api.md)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct


class WireToolFunction(Struct, omit_defaults=True):
    name: str
    arguments: Any = {}
    index: int | None = None
    description: str | None = None


class WireToolCall(Struct, omit_defaults=True):
    function: WireToolFunction
    id: str | None = None
    type: str | None = None


class WireMessage(Struct, omit_defaults=True):
    role: str
    content: str | None = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class ReplyMessage(Struct, omit_defaults=True):
    """The assistant's message in a chat answer: `content` is always present, even when empty."""

    role: str
    content: str
    thinking: str | None = None
    tool_calls: list[WireToolCall] | None = None


class ChatRequest(Struct):
    model: str = ""
    name: str = ""
    messages: list[WireMessage] | None = None
    tools: list[dict[str, Any]] | None = None
    format: Any = None
    options: Any = None
    stream: bool | None = None
    keep_alive: Any = None
    think: Any = None
    truncate: bool | None = None


class GenerateRequest(Struct):
    model: str = ""
    name: str = ""
    prompt: str | None = ""
    suffix: str | None = ""
    images: list[str] | None = None
    format: Any = None
    options: Any = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    stream: bool | None = None
    raw: bool | None = False
    keep_alive: Any = None
    think: Any = None


class Metrics(Struct, omit_defaults=True):
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0


class GenerateChunk(Struct, omit_defaults=True):
    model: str
    created_at: str
    response: str
    done: bool
    thinking: str | None = None  # a thinking model's reasoning, apart from the response
    done_reason: str | None = None
    context: list[int] | None = None
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    request_id: str | None = None


class ChatChunk(Struct, omit_defaults=True):
    model: str
    created_at: str
    message: ReplyMessage
    done: bool
    done_reason: str | None = None
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    request_id: str | None = None


class EmbedRequest(Struct):
    model: str = ""
    input: str | list[str] | None = None
    truncate: bool | None = True
    dimensions: int | None = None
    options: Any = None
    keep_alive: Any = None


class EmbedResponse(Struct, omit_defaults=True):
    model: str
    embeddings: list[list[float]]
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0


class LegacyEmbedRequest(Struct):
    model: str = ""
    prompt: str | None = ""
    options: Any = None
    keep_alive: Any = None


class LegacyEmbedResponse(Struct):
    embedding: list[float]


class Details(Struct):
    parent_model: str = ""
    format: str = "gguf"
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class TagModel(Struct, omit_defaults=True):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: Details
    capabilities: list[str] | None = None


class TagsResponse(Struct):
    models: list[TagModel]


class ShowRequest(Struct):
    model: str = ""
    name: str = ""
    verbose: bool | None = None
    system: str | None = None
    options: Any = None


class ShowResponse(Struct, omit_defaults=True):
    modelfile: str
    parameters: str
    template: str
    details: Details
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str
    license: str = ""
    system: str = ""


class PsModel(Struct):
    name: str
    model: str
    size: int
    digest: str
    details: Details
    expires_at: str
    size_vram: int
    context_length: int


class PsResponse(Struct):
    models: list[PsModel]


class VersionResponse(Struct):
    version: str


class PullRequest(Struct):
    model: str = ""
    name: str = ""
    insecure: bool | None = None
    stream: bool | None = None


class Progress(Struct, omit_defaults=True):
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class CreateRequest(Struct):
    model: str = ""
    name: str = ""
    # `from` is a Python keyword: the wire name is mapped with rename
    from_: str | None = msgspec.field(default=None, name="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    system: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[WireMessage] | None = None
    quantize: str | None = None
    stream: bool | None = None
    modelfile: str | None = None  # the legacy form: the Modelfile's text, FROM @sha256:… for a blob


class CopyRequest(Struct):
    source: str = ""
    destination: str = ""


class DeleteRequest(Struct):
    model: str = ""
    name: str = ""


class ErrorBody(Struct):
    error: str

"""OpenAI's wire types for /v1, as the official SDKs send and expect them.

Fields whose OpenAI type is a union msgspec cannot express (a prompt that is a string, a list of
strings or token arrays; an embedding input likewise) are `Any` here and checked in
openai_convert, which names the problem in a 400.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

SYSTEM_FINGERPRINT = "fp_localforge"


# requests
class FunctionCall(Struct):
    name: str
    arguments: Any = "{}"  # a JSON string by OpenAI's convention; an object is accepted too


class ToolCallIn(Struct):
    function: FunctionCall
    id: str | None = None
    type: str | None = "function"


class ImageURL(Struct):
    url: str
    detail: str | None = None


class ContentPart(Struct):
    type: str
    text: str | None = None
    image_url: ImageURL | str | None = None


class ChatMessage(Struct):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class JSONSchemaFormat(Struct):
    name: str = ""
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(Struct):
    type: str
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(Struct):
    include_usage: bool | None = None


class Reasoning(Struct):
    effort: str | None = None


class Sampling(Struct, kw_only=True):
    """The fields chat and text completions share."""

    model: str = ""
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None


class ChatCompletionRequest(Sampling, kw_only=True):
    messages: list[ChatMessage] | None = None
    max_completion_tokens: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    reasoning_effort: str | None = None
    reasoning: Reasoning | None = None


class CompletionRequest(Sampling, kw_only=True):
    prompt: Any = None
    suffix: str | None = None
    echo: bool | None = None


class EmbeddingRequest(Struct):
    model: str = ""
    input: Any = None
    encoding_format: str | None = None
    dimensions: int | None = None


# responses
class PromptTokensDetails(Struct):
    cached_tokens: int = 0


class Usage(Struct, kw_only=True, omit_defaults=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None  # when the prompt cache served some


class FunctionOut(Struct):
    name: str
    arguments: str  # a JSON string, as OpenAI sends it


class ToolCallOut(Struct, kw_only=True, omit_defaults=True):
    id: str
    type: str  # always "function"; no default, so that omit_defaults keeps it
    function: FunctionOut
    index: int | None = None  # only in stream deltas


class AssistantMessage(Struct, omit_defaults=True):
    role: str
    content: str | None
    reasoning: str | None = None  # a thinking model's thoughts, named as Ollama's /v1 names them
    tool_calls: list[ToolCallOut] | None = None


class ChatChoice(Struct):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    object: str = "chat.completion"
    system_fingerprint: str = SYSTEM_FINGERPRINT


class ChunkDelta(Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallOut] | None = None


class ChunkChoice(Struct):
    index: int
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(Struct):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    object: str = "chat.completion.chunk"
    system_fingerprint: str = SYSTEM_FINGERPRINT


class CompletionChoice(Struct):
    index: int
    text: str
    finish_reason: str | None
    logprobs: None = None


class Completion(Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    object: str = "text_completion"
    system_fingerprint: str = SYSTEM_FINGERPRINT


class Model(Struct):
    id: str
    created: int
    object: str = "model"
    owned_by: str = "library"


class ModelList(Struct):
    data: list[Model]
    object: str = "list"


class EmbeddingData(Struct):
    index: int
    embedding: list[float] | str  # a base64 string when encoding_format is "base64"
    object: str = "embedding"


class EmbeddingUsage(Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(Struct):
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
    object: str = "list"

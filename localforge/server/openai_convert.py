"""OpenAI requests in, pipeline types out; pipeline results back into OpenAI's conventions.

The mapping follows Ollama's own /v1 layer (openai/openai.go), so a client sees the same
behaviour from LocalForge as from Ollama: temperature and top_p default to 1.0, max_tokens is
num_predict, response_format becomes `format`, and tool arguments are JSON strings.
"""

from __future__ import annotations

import json
from typing import Any

from localforge import options as opts
from localforge.errors import BadRequest
from localforge.inference import Format, Inference, Message, ToolCall, new_call_id
from localforge.server import ollama_convert
from localforge.server import openai_wire as ow

# an OpenAI "developer" message is what newer SDKs send in place of "system"
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool", "function": "tool"}


def _options(req: ow.Sampling, max_tokens: int | None) -> dict[str, Any]:
    if req.n not in (None, 1):
        raise BadRequest("n must be 1: LocalForge returns one choice per request")
    raw: dict[str, Any] = {
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "num_predict": max_tokens, "seed": req.seed,
        "presence_penalty": req.presence_penalty, "frequency_penalty": req.frequency_penalty,
        "stop": req.stop,
    }
    if max_tokens is not None and max_tokens <= 0:
        raise BadRequest("max_tokens must be a positive number")
    return opts.validate({k: v for k, v in raw.items() if v is not None})


def _image(part: ow.ContentPart) -> bytes:
    url = part.image_url.url if isinstance(part.image_url, ow.ImageURL) else part.image_url
    if not url:
        raise BadRequest("an image_url content part needs a url")
    if not url.startswith("data:"):
        raise BadRequest("image_url must be a data: URL with base64 image data; "
                         "LocalForge does not fetch images from the network")
    if ";base64," not in url[:100]:
        raise BadRequest("image_url data: URLs must be base64-encoded (data:image/png;base64,...)")
    return ollama_convert.image(url)


def _content(content: str | list[ow.ContentPart] | None) -> tuple[str, list[bytes]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts: list[str] = []
    images: list[bytes] = []
    for part in content:
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type == "image_url":
            images.append(_image(part))
        else:
            raise BadRequest(f"unsupported content part type '{part.type}' "
                             "(expected \"text\" or \"image_url\")")
    return "\n".join(texts), images


def _message(m: ow.ChatMessage, tool_names: dict[str, str]) -> Message:
    role = _ROLES.get(m.role.lower())
    if role is None:
        raise BadRequest(f"invalid message role '{m.role}'")
    text, images = _content(m.content)
    calls = [ToolCall(name=c.function.name, arguments=ollama_convert.tool_arguments(c.function.arguments),
                      id=c.id or new_call_id(), index=i)
             for i, c in enumerate(m.tool_calls or [])]
    tool_names.update({c.id: c.name for c in calls})
    # a tool result names its call by id only; the templates want the tool's name as well
    tool_name = (m.name or tool_names.get(m.tool_call_id or "")) if role == "tool" else None
    return Message(role=role, content=text, images=images, tool_calls=calls,
                   tool_name=tool_name, tool_call_id=m.tool_call_id)


def _format(response_format: ow.ResponseFormat | None) -> Format:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return "json"
    if response_format.type == "json_schema":
        spec = response_format.json_schema
        if spec is None or not spec.schema:
            raise BadRequest("response_format json_schema needs json_schema.schema")
        return spec.schema
    raise BadRequest(f"unsupported response_format type '{response_format.type}' "
                     "(expected \"text\", \"json_object\" or \"json_schema\")")


ToolChoice = str | dict[str, Any] | None


def _tool_choice(tools: list[dict[str, Any]], choice: ToolChoice) -> ToolChoice:
    if choice is None or choice in ("auto", "none"):
        return choice
    if choice == "required":
        if not tools:
            raise BadRequest("tool_choice \"required\" needs at least one tool in tools")
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        wanted = choice["function"].get("name")
        offered = {(t.get("function") or {}).get("name") for t in tools}
        if not wanted or wanted not in offered:
            raise BadRequest(f"tool_choice names function '{wanted}', which is not in tools")
        return choice
    raise BadRequest("tool_choice must be \"none\", \"auto\", \"required\" or "
                     "{\"type\": \"function\", \"function\": {\"name\": ...}}")


def _think(req: ow.ChatCompletionRequest) -> bool | str | None:
    """`reasoning_effort` (or `reasoning.effort`) is Ollama's `think`; "none" turns it off."""
    effort = req.reasoning_effort or (req.reasoning.effort if req.reasoning else None)
    if effort is None:
        return None
    if effort == "none":
        return False
    if effort in ("low", "medium", "high"):
        return effort
    raise BadRequest(f"reasoning_effort must be \"none\", \"low\", \"medium\" or \"high\", not '{effort}'")


def chat(req: ow.ChatCompletionRequest, client: str) -> Inference:
    if not req.messages:
        raise BadRequest("messages must contain at least one message")
    tool_names: dict[str, str] = {}
    messages = [_message(m, tool_names) for m in req.messages]
    tools = ollama_convert.tools_value(req.tools)
    choice = _tool_choice(tools, req.tool_choice)
    if choice == "none":
        tools, choice = [], None
    return Inference(
        model=ollama_convert.model_name(req.model, ""), kind="chat", messages=messages, tools=tools,
        tool_choice=choice, format=_format(req.response_format), think=_think(req),
        options=_options(req, req.max_completion_tokens or req.max_tokens),
        stream=bool(req.stream), client=client)


def _prompt(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        raise BadRequest("prompt must be one string: LocalForge completes one prompt per request")
    raise BadRequest("prompt must be a string (token arrays are not supported)")


def completion(req: ow.CompletionRequest, client: str) -> Inference:
    return Inference(
        model=ollama_convert.model_name(req.model, ""), kind="generate", prompt=_prompt(req.prompt),
        suffix=req.suffix or "", options=_options(req, req.max_tokens), stream=bool(req.stream),
        client=client)


def embedding_input(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, list) and not value:
        raise BadRequest("input must not be empty")
    if isinstance(value, list):
        raise BadRequest("input must be a string or a list of strings "
                         "(token arrays are not supported)")
    raise BadRequest("input is required: a string or a list of strings")


def finish_reason(done_reason: str, calls: list[ToolCall]) -> str:
    if calls:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


def tool_calls(calls: list[ToolCall], with_index: bool = False) -> list[ow.ToolCallOut]:
    return [ow.ToolCallOut(id=c.id, type="function", index=c.index if with_index else None,
                           function=ow.FunctionOut(name=c.name, arguments=json.dumps(c.arguments)))
            for c in calls]

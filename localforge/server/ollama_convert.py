"""Wire requests in, pipeline types out: the Ollama native forms."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from localforge import options as opts
from localforge.durations import keep_alive_seconds
from localforge.errors import BadRequest
from localforge.inference import Format, Inference, Message, ToolCall, new_call_id
from localforge.server import ollama_wire


def model_name(model: str, name: str) -> str:
    chosen = model or name
    if not chosen:
        raise BadRequest("model is required")
    return chosen


def image(data: str) -> bytes:
    """Raw base64, or a data: URL (Ollama itself rejects the prefix; clients send it anyway)."""
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"invalid image: not base64 data ({exc})") from exc


def format_value(value: Any) -> Format:
    if value in (None, ""):
        return None
    if value == "json" or isinstance(value, dict):
        return value
    raise BadRequest("format must be \"json\" or a JSON schema object")


def tools_value(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Each tool is `{"type": "function", "function": {"name": ..., "parameters": {...}}}`."""
    for i, tool in enumerate(tools or []):
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) \
                or not function["name"]:
            raise BadRequest(f"tools[{i}].function must be an object with a \"name\"")
        if not isinstance(function.get("parameters") or {}, dict):
            raise BadRequest(f"tools[{i}].function.parameters must be a JSON schema object")
    return tools or []


def tool_arguments(value: Any) -> dict[str, Any]:
    """Arguments are an object on the wire; accept a JSON string too, as some clients send one."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value) if value.strip() else {}
        except (json.JSONDecodeError, RecursionError) as exc:
            raise BadRequest(f"tool call arguments are not valid JSON: {exc}") from exc
        if isinstance(parsed, dict):
            return parsed
    raise BadRequest("tool call arguments must be a JSON object")


def message(m: ollama_wire.WireMessage) -> Message:
    return Message(
        role=m.role.lower(), content=m.content or "", thinking=m.thinking,
        images=[image(i) for i in m.images or []],
        tool_calls=[ToolCall(name=c.function.name, arguments=tool_arguments(c.function.arguments),
                             id=c.id or new_call_id(),
                             index=c.function.index or i)
                    for i, c in enumerate(m.tool_calls or [])],
        tool_name=m.tool_name, tool_call_id=m.tool_call_id)


def chat(req: ollama_wire.ChatRequest, client: str) -> Inference:
    return Inference(
        model=model_name(req.model, req.name), kind="chat",
        messages=[message(m) for m in req.messages or []],
        tools=tools_value(req.tools), format=format_value(req.format),
        options=opts.validate(req.options), keep_alive=keep_alive_seconds(req.keep_alive),
        think=think_value(req.think), stream=req.stream is not False, client=client)


def think_value(value: Any) -> bool | str | None:
    if value is None or isinstance(value, bool) or value in ("low", "medium", "high", "max"):
        return value  # type: ignore[no-any-return]
    raise BadRequest("think must be true, false, \"low\", \"medium\", \"high\" or \"max\"")


def generate(req: ollama_wire.GenerateRequest, client: str) -> Inference:
    return Inference(
        model=model_name(req.model, req.name), kind="generate", prompt=req.prompt or "",
        suffix=req.suffix or "", system=req.system, template=req.template or None,
        raw=bool(req.raw), images=[image(i) for i in req.images or []],
        format=format_value(req.format), options=opts.validate(req.options),
        keep_alive=keep_alive_seconds(req.keep_alive), think=think_value(req.think),
        stream=req.stream is not False, client=client)

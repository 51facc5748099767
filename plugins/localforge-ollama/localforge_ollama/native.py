"""An `Inference` back into Ollama's native request, and Ollama's NDJSON answer as events.

Everything the client sent that the pipeline carries goes upstream unchanged: options, keep_alive,
format, tools, images, raw/template/system/suffix, and the thinking of earlier turns.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx

from localforge.backends.fleet import BrokenAnswer
from localforge.durations import FOREVER
from localforge.errors import BackendFailed
from localforge.inference import Delta, Event, Final, Inference, Message, ToolCall, new_call_id
from localforge.lines import alines


def keep_alive(seconds: float | None) -> float | int | None:
    if seconds is None:
        return None
    return -1 if seconds == FOREVER else seconds


def _b64(images: list[bytes]) -> list[str]:
    return [base64.b64encode(i).decode() for i in images]


def message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.images:
        out["images"] = _b64(m.images)
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "function": {"index": c.index, "name": c.name,
                                                      "arguments": c.arguments}}
                             for c in m.tool_calls]
    for key in ("tool_name", "tool_call_id", "thinking"):
        if getattr(m, key):
            out[key] = getattr(m, key)
    return out


def body(request: Inference, model: str) -> dict[str, Any]:
    """The JSON for /api/chat or /api/generate (see `path`), always streamed from upstream."""
    out: dict[str, Any] = {"model": model, "stream": True}
    if request.kind == "chat":
        out["messages"] = [message(m) for m in request.messages]
        if request.tools:
            out["tools"] = request.tools
    else:
        out["prompt"] = request.prompt
        for key in ("suffix", "system", "template"):
            if getattr(request, key):
                out[key] = getattr(request, key)
        if request.raw:
            out["raw"] = True
        if request.images:
            out["images"] = _b64(request.images)
    if request.format not in (None, ""):
        out["format"] = request.format
    if request.options:
        out["options"] = request.options
    if (alive := keep_alive(request.keep_alive)) is not None:
        out["keep_alive"] = alive
    if request.think is not None:
        out["think"] = request.think  # the upstream decides whether its model can think
    return out


def path(request: Inference) -> str:
    return "/api/chat" if request.kind == "chat" else "/api/generate"


def _calls(raw: list[dict[str, Any]]) -> list[ToolCall]:
    calls = []
    for i, c in enumerate(raw):
        function = c.get("function") or {}
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            arguments = json.loads(arguments or "{}")
        calls.append(ToolCall(name=function.get("name", ""), arguments=arguments,
                              id=c.get("id") or new_call_id(), index=function.get("index", i)))
    return calls


def _final(data: dict[str, Any]) -> Final:
    return Final(done_reason=data.get("done_reason") or "stop",
                 prompt_tokens=int(data.get("prompt_eval_count") or 0),
                 eval_tokens=int(data.get("eval_count") or 0),
                 load_ns=int(data.get("load_duration") or 0),
                 prompt_ns=int(data.get("prompt_eval_duration") or 0),
                 eval_ns=int(data.get("eval_duration") or 0), context=data.get("context"))


async def events(response: httpx.Response, label: str) -> AsyncIterator[Event]:
    """Ollama's NDJSON stream as Deltas and one Final; an `{"error"}` line becomes an error."""
    async for line in alines(response.aiter_bytes()):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if data.get("error"):
                raise BackendFailed(f"{label} failed while answering: {str(data['error'])[:300]}")
            reply = data.get("message") or {}
            delta = Delta(text=reply.get("content") or data.get("response") or "",
                          thinking=reply.get("thinking") or data.get("thinking") or "",
                          tool_calls=_calls(reply.get("tool_calls") or []))
        except (ValueError, AttributeError, TypeError) as exc:
            raise BackendFailed(f"{label} sent a line that is not an Ollama answer: {exc}") from None
        if delta.text or delta.thinking or delta.tool_calls:
            yield delta
        if data.get("done"):
            yield _final(data)
            return
    raise BrokenAnswer("the answer ended without its final chunk")


def timestamp(text: str | None) -> datetime | None:
    """Ollama writes nanoseconds; Python reads at most microseconds."""
    if not text:
        return None
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:min(digits, 6)] + rest[digits:]
    try:
        return datetime.fromisoformat(head + dot + rest)
    except ValueError:
        return None

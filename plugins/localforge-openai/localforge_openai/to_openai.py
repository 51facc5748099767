"""An `Inference` as an OpenAI-compatible request body: messages, sampling, tools, formats."""

from __future__ import annotations

import base64
import json
from typing import Any

from localforge.inference import Inference, Message

# Ollama option -> OpenAI parameter, for the parameters every OpenAI-compatible server accepts
# (OpenAI itself rejects unknown ones, so top_k, min_p and friends are not sent)
SAMPLING = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop",
            "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty"}


def uses_chat(request: Inference) -> bool:
    """Generate becomes a chat turn as Ollama's template would make it, unless the client asked
    for the raw prompt or fill-in-the-middle, which only /completions can express."""
    return request.kind == "chat" or not (request.raw or request.suffix)


def sampling(options: dict[str, Any]) -> dict[str, Any]:
    body = {SAMPLING[k]: v for k, v in options.items() if k in SAMPLING and v is not None}
    if int(options.get("num_predict") or -1) > 0:
        body["max_tokens"] = int(options["num_predict"])
    if int(body.get("seed", 0)) < 0:
        del body["seed"]
    return body


def response_format(fmt: Any, style: str) -> dict[str, Any] | None:
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if style == "json_object":
        return {"type": "json_object", "schema": fmt}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}


def image_url(data: bytes) -> dict[str, Any]:
    mime = ("image/png" if data.startswith(b"\x89PNG") else "image/gif" if data.startswith(b"GIF8")
            else "image/webp" if data[8:12] == b"WEBP" else "image/jpeg")
    return {"type": "image_url",
            "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def content(text: str, images: list[bytes]) -> str | list[dict[str, Any]]:
    if not images:
        return text
    return [{"type": "text", "text": text}, *(image_url(i) for i in images)]


def messages(items: list[Message]) -> list[dict[str, Any]]:
    """Ollama messages as OpenAI's. Ollama clients answer a tool call with `tool_name` only;
    OpenAI needs the call's id, so each tool answer takes the id of the first unanswered call of
    that name (or the first unanswered call at all)."""
    out: list[dict[str, Any]] = []
    unanswered: list[tuple[str, str]] = []  # (id, name)
    for m in items:
        if m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in m.tool_calls]})
            unanswered = [(c.id, c.name) for c in m.tool_calls]
        elif m.role == "tool":
            call_id = m.tool_call_id
            if call_id is None and unanswered:
                match = next((u for u in unanswered if u[1] == m.tool_name), unanswered[0])
                call_id = match[0]
            unanswered = [u for u in unanswered if u[0] != call_id]
            out.append({"role": "tool", "content": m.content, "tool_call_id": call_id or "call_0"})
        else:
            out.append({"role": m.role, "content": content(m.content, m.images)})
    return out


def chat_messages(request: Inference, default_system: str) -> list[dict[str, Any]]:
    if request.kind == "chat":
        return messages(request.messages)
    system = request.system if request.system is not None else default_system
    turn = [{"role": "system", "content": system}] if system else []
    return [*turn, {"role": "user", "content": content(request.prompt, request.images)}]


def body(request: Inference, model: str, default_system: str, style: str,
         stream: bool) -> dict[str, Any]:
    """The JSON for /chat/completions (or /completions when `uses_chat` is false)."""
    out: dict[str, Any] = {"model": model, "stream": stream, **sampling(request.options)}
    if uses_chat(request):
        out["messages"] = chat_messages(request, default_system)
        if request.tools:
            out["tools"] = request.tools
            # Ollama has no tool_choice: offering tools means the model decides, OpenAI's "auto"
            out["tool_choice"] = "auto" if request.tool_choice is None else request.tool_choice
    else:
        out["prompt"] = request.prompt
        if request.suffix:
            out["suffix"] = request.suffix
    fmt = response_format(request.format, style)
    if fmt is not None:
        out["response_format"] = fmt
    if stream:
        out["stream_options"] = {"include_usage": True}
    return out

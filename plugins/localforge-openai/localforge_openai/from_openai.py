"""OpenAI-compatible answers as LocalForge events: SSE chunks or one JSON body in, Deltas and a
Final out. Tool-call arguments arrive as JSON text, often in fragments; they leave as objects."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from localforge.backends.fleet import BrokenAnswer
from localforge.errors import BackendFailed
from localforge.inference import Delta, Embedding, Event, Final, ToolCall, new_call_id
from localforge.lines import alines


@dataclass(slots=True)
class PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class Answer:
    """What has arrived so far, and when."""

    label: str  # the endpoint, for error messages
    started_ns: int = field(default_factory=time.perf_counter_ns)
    first_ns: int = 0
    pieces: int = 0
    finish: str = "stop"
    usage: dict[str, Any] = field(default_factory=dict)
    calls: dict[int, PartialCall] = field(default_factory=dict)

    def tool_calls(self) -> list[ToolCall]:
        return [tool_call(self.label, c.name, c.arguments, c.id or new_call_id(), i)
                for i, c in sorted(self.calls.items())]

    def final(self) -> Final:
        ended = time.perf_counter_ns()
        first = self.first_ns or ended
        return Final(done_reason="length" if self.finish == "length" else "stop",
                     prompt_tokens=int(self.usage.get("prompt_tokens") or 0),
                     eval_tokens=int(self.usage.get("completion_tokens") or self.pieces),
                     prompt_ns=first - self.started_ns, eval_ns=ended - first)


def tool_call(label: str, name: str, arguments: str | dict[str, Any], call_id: str,
              index: int) -> ToolCall:
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            raise BackendFailed(f"{label} returned a call to tool '{name}' whose arguments are "
                                f"not JSON: {arguments[:200]}") from None
    else:
        parsed = arguments
    if not isinstance(parsed, dict):
        raise BackendFailed(f"{label} returned a call to tool '{name}' whose arguments are not "
                            "an object")
    return ToolCall(name=name, arguments=parsed, id=call_id, index=index)


def _check(label: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BackendFailed(f"{label} sent something that is not an OpenAI answer")
    if data.get("error"):
        error = data["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise BackendFailed(f"{label} failed while answering: {str(message)[:300]}")
    return data


def _choice_delta(answer: Answer, choice: dict[str, Any]) -> Delta | None:
    answer.finish = choice.get("finish_reason") or answer.finish
    delta = choice.get("delta") or {}
    text = delta.get("content") or choice.get("text") or ""
    thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
    for i, part in enumerate(delta.get("tool_calls") or []):
        call = answer.calls.setdefault(int(part.get("index", i)), PartialCall())
        call.id = part.get("id") or call.id
        function = part.get("function") or {}
        call.name += function.get("name") or ""
        call.arguments += function.get("arguments") or ""
    if not (text or thinking):
        return None
    answer.first_ns = answer.first_ns or time.perf_counter_ns()
    answer.pieces += 1
    return Delta(text=text, thinking=thinking)


async def stream(response: httpx.Response, label: str) -> AsyncIterator[Event]:
    """Server-sent events from /chat/completions or /completions with stream=true."""
    answer = Answer(label)
    ended = False
    async for line in alines(response.aiter_bytes()):
        if not line.startswith("data:"):
            continue  # comments, keep-alives, event names
        payload = line[5:].strip()
        if payload == "[DONE]":
            ended = True
            break
        try:
            data = _check(label, json.loads(payload))
        except json.JSONDecodeError:
            raise BackendFailed(f"{label} sent an event that is not JSON: {payload[:200]}") from None
        answer.usage = data.get("usage") or answer.usage
        for choice in data.get("choices") or []:
            delta = _choice_delta(answer, choice)
            if delta is not None:
                yield delta
            ended = ended or bool(choice.get("finish_reason"))
    if not ended:
        raise BrokenAnswer("the stream ended before the answer did")
    if answer.calls:
        yield Delta(tool_calls=answer.tool_calls())
    yield answer.final()


def whole(data: Any, label: str, started_ns: int) -> list[Event]:
    """One non-streamed answer (used when tools are offered: servers that can call tools do it
    reliably only without streaming, and Ollama sends tool calls whole anyway)."""
    answer = Answer(label, started_ns=started_ns)
    body = _check(label, data)
    answer.usage = body.get("usage") or {}
    choices = body.get("choices") or [{}]
    choice = choices[0]
    answer.finish = choice.get("finish_reason") or "stop"
    message = choice.get("message") or {}
    text = message.get("content") or choice.get("text") or ""
    thinking = message.get("reasoning_content") or message.get("reasoning") or ""
    calls = [tool_call(label, (c.get("function") or {}).get("name", ""),
                       (c.get("function") or {}).get("arguments") or "{}", c.get("id") or new_call_id(), i)
             for i, c in enumerate(message.get("tool_calls") or [])]
    answer.first_ns = time.perf_counter_ns()
    answer.pieces = 1 if text else 0
    events: list[Event] = []
    if text or thinking or calls:
        events.append(Delta(text=text, thinking=thinking, tool_calls=calls))
    events.append(answer.final())
    return events


def embedding(data: Any, label: str, count: int) -> Embedding:
    body = _check(label, data)
    rows = sorted(body.get("data") or [], key=lambda r: r.get("index", 0))
    if len(rows) != count:
        raise BackendFailed(f"{label} returned {len(rows)} embeddings for {count} inputs")
    return Embedding(vectors=[pooled(r.get("embedding") or []) for r in rows],
                     prompt_tokens=int((body.get("usage") or {}).get("prompt_tokens") or 0))


def pooled(vector: list[Any]) -> list[float]:
    """A vector, or the mean of per-token vectors: llama-cpp-python's server returns one vector
    per token for a model without a pooling layer."""
    if vector and isinstance(vector[0], list):
        width = len(vector[0])
        return [sum(row[i] for row in vector) / len(vector) for i in range(width)]
    return [float(v) for v in vector]

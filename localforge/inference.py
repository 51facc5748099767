"""The request and result types every stage of the pipeline passes along (never wire formats)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio

from localforge.errors import Canceled

Format = str | dict[str, Any] | None  # None, "json", or a JSON schema
Kind = Literal["chat", "generate"]
# returns when the client that sent a request has gone away
UntilDisconnected = Callable[[], Awaitable[None]]
T = TypeVar("T")


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:8]}"


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=new_call_id)
    index: int = 0


@dataclass(slots=True)
class Message:
    role: str
    content: str = ""
    images: list[bytes] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_name: str | None = None
    tool_call_id: str | None = None
    thinking: str | None = None


@dataclass(slots=True)
class Inference:
    """One chat or generate request, whichever API it came through."""

    model: str  # the name as the client spelled it
    kind: Kind
    messages: list[Message] = field(default_factory=list)
    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    raw: bool = False
    images: list[bytes] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None  # OpenAI's: "auto", "none", "required", named
    format: Format = None
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: float | None = None  # seconds; None = server default
    think: bool | str | None = None
    stream: bool = True
    client: str = ""
    # whose prompt cache it may reuse: with api_keys, a hash of its key (auth.key_scope); a
    # prompt cached for one scope is evaluated afresh for another, so no key learns another's
    scope: str = ""
    # it carries what the sensitivity profiler flagged (or quotes such a prompt, as the judge's
    # question does): no remote model serves it, whichever way it goes (pipeline.Pipeline._serve)
    private: bool = False
    # how `auto` treats it when local models are busy (route/overflow.py), and its API key's
    # daily budget for remote models (None: only the server's)
    priority: str = "normal"
    daily_budget: float | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    received_ns: int = field(default_factory=time.monotonic_ns)
    # the client's disconnect, passed along with its request; None: no client to lose (the judge)
    until_disconnected: UntilDisconnected | None = field(default=None, repr=False)

    @property
    def is_load_only(self) -> bool:
        if self.kind == "chat":
            return not self.messages
        return not self.prompt and not self.suffix and not self.images


@dataclass(slots=True)
class Delta:
    """A piece of the answer as it is generated."""

    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass(slots=True)
class Final:
    """The end of an answer, with Ollama's counters (durations in nanoseconds)."""

    done_reason: str = "stop"
    prompt_tokens: int = 0  # evaluated; as Ollama's prompt_eval_count, without cached_tokens
    cached_tokens: int = 0  # of the prompt, already in the model's cache (not evaluated again)
    eval_tokens: int = 0
    load_ns: int = 0
    prompt_ns: int = 0
    eval_ns: int = 0
    total_ns: int = 0
    context: list[int] | None = None
    runner: RunnerCost | None = None  # a runner process's own cost, where one served it


@dataclass(slots=True)
class RunnerCost:
    """The decode steps of a runner process since its previous answer ended: how many, their time,
    and the part of it in llama_decode (the rest is the runner's own loop)."""

    steps: int = 0
    step_ns: int = 0
    decode_ns: int = 0


Event = Delta | Final


@dataclass(slots=True)
class Embedding:
    vectors: list[list[float]]
    prompt_tokens: int = 0
    load_ns: int = 0
    total_ns: int = 0


async def unless_disconnected(until_disconnected: UntilDisconnected | None,
                              work: Callable[[], Awaitable[T]]) -> T:
    """Run `work`; if the client goes away first, cancel it (a backend stops generating) and
    raise Canceled."""
    if until_disconnected is None:
        return await work()
    result: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as tg:
        async def watcher() -> None:
            await until_disconnected()
            tg.cancel_scope.cancel()

        tg.start_soon(watcher)
        try:
            result.append(await work())
        except Exception as exc:  # raised below, not wrapped in the task group's ExceptionGroup
            failure.append(exc)
        tg.cancel_scope.cancel()
    if failure:
        raise failure[0]
    if not result:
        raise Canceled("the client disconnected")
    return result[0]

"""A LocalForge backend plugin in one file: the model `echo` answers with the last user message.

A backend lists its models as `ModelCard`s and streams `Delta`s then one `Final` for each request;
LocalForge does the rest (the Ollama and OpenAI APIs, routing, scheduling, records). Settings come
from the plugin's own section of localforge.toml, here `[echo]`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from localforge.backends.base import ModelCard, ModelDetails, Residency
from localforge.config import Settings
from localforge.errors import Unsupported
from localforge.hookspecs import hookimpl
from localforge.inference import Delta, Embedding, Event, Final, Inference


class EchoBackend:
    name = "echo"

    def __init__(self, model: str) -> None:
        self.model = model

    def models(self) -> list[ModelCard]:
        return [ModelCard(name=self.model, backend=self.name, capabilities=["completion"],
                          details=ModelDetails(format="echo", family="echo"))]

    async def infer(self, card: ModelCard, request: Inference) -> AsyncIterator[Event]:
        started = time.perf_counter_ns()
        last = request.prompt if request.kind == "generate" else next(
            (m.content for m in reversed(request.messages) if m.role == "user"), "")
        words = last.split(" ")
        for i, word in enumerate(words):
            yield Delta(text=word if i == 0 else " " + word)
        yield Final(eval_tokens=len(words), eval_ns=time.perf_counter_ns() - started)

    async def embed(self, card: ModelCard, texts: list[str], options: dict[str, Any],
                    truncate: bool = True) -> Embedding:
        raise Unsupported(f"{card.name} does not support embeddings")

    async def load(self, card: ModelCard, options: dict[str, Any], embedding: bool | None = None) -> int:
        return 0

    async def unload(self, card: ModelCard, options: dict[str, Any] | None = None,
                     embedding: bool | None = None) -> None:
        return None

    def resident(self) -> list[Residency]:
        return []

    async def close(self) -> None:
        return None


@hookimpl
def register_backends(register: Callable[[Any], None], settings: Settings) -> None:
    register(EchoBackend(settings.section("echo").get("model", "echo:latest")))

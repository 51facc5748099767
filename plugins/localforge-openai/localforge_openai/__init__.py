"""LocalForge plugin: models served by OpenAI-compatible endpoints (vLLM, llama-server, LM Studio,
OpenAI, OpenRouter, Groq, ...), configured in the `[openai]` section of localforge.toml."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localforge.config import Settings
from localforge.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[[Any], None], settings: Settings) -> None:
    from localforge_openai.backend import OpenAIBackend
    from localforge_openai.config import parse

    config = parse(settings.section("openai"))
    if config.endpoints:
        register(OpenAIBackend(config))

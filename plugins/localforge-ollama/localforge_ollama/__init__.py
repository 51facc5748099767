"""LocalForge plugin: models of upstream Ollama servers, configured in the `[ollama]` section of
localforge.toml. Native requests are forwarded as they came; upstream /api/ps shows in ours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localforge.config import Settings
from localforge.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[[Any], None], settings: Settings) -> None:
    from localforge_ollama.backend import OllamaBackend
    from localforge_ollama.config import parse

    config = parse(settings.section("ollama"))
    if config.upstreams:
        register(OllamaBackend(config))

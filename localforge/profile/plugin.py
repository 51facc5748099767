"""The built-in profilers and embedders, registered through the hooks like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localforge.config import Settings
from localforge.hookspecs import hookimpl
from localforge.profile.conversation import ConversationProfiler
from localforge.profile.embedding import (
    DEFAULT_EMBEDDER,
    EmbeddingProfiler,
    MiniLMEmbedder,
    configured_embedder,
)
from localforge.profile.sensitivity import Sensitivity, SensitivityProfiler
from localforge.profile.task import TaskProfiler
from localforge.profile.tokens import TokenProfiler


# tryfirst: pluggy calls the last-registered plugin first, but a third-party profiler should run
# after the built-in ones so that it can read the task, tokens and sensitivity they found
@hookimpl(tryfirst=True)
def register_profilers(register: Callable[[Any], None], settings: Settings) -> None:
    options = settings.profile
    register(TokenProfiler())
    register(ConversationProfiler())
    register(SensitivityProfiler(Sensitivity(options.sensitive_terms, options.sensitive_patterns)))
    register(EmbeddingProfiler())  # before the task profiler, whose head reads the embedding
    # the head learnt what MiniLM's vectors mean; another embedder's would mislead it
    reads_minilm = options.embedder in (DEFAULT_EMBEDDER, f"{DEFAULT_EMBEDDER}-float32")
    register(TaskProfiler(floor=options.task_confidence_floor, use_head=options.task_head and reads_minilm))


@hookimpl
def register_embedders(register: Callable[[Any], None], settings: Settings) -> None:
    configured = configured_embedder(settings.profile.embedder)
    if configured is not None:
        register(configured)
    cache_dir = settings.data_dir / "cache"
    max_tokens = settings.profile.embedder_max_tokens
    register(MiniLMEmbedder(DEFAULT_EMBEDDER, "int8", max_tokens, cache_dir))
    register(MiniLMEmbedder(f"{DEFAULT_EMBEDDER}-float32", "float32", max_tokens, cache_dir))

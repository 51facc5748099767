"""Building a request's Profile: every registered Profiler in turn, then the embedding.

The profilers and embedders come from the `register_profilers` and `register_embedders` hooks
(the built-in ones through `localforge.profile.plugin`); the embedder the config names is handed
to each profiler that declares `uses_embedder`. Profiling is blocking work (a classifier and a
small transformer), so the server calls `aprofile`, which runs it in a worker thread.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from localforge.errors import BadRequest
from localforge.inference import Inference
from localforge.plugins import collect
from localforge.profile.base import Embedder, Profile, Profiler

if TYPE_CHECKING:
    import pluggy

    from localforge.config import Settings


def request_text(request: Inference) -> str:
    """The text the task classifier and the embedder read: the last user turn, then the system
    prompt. The user turn comes first because a long, generic system prompt (a client's standard
    instructions) would otherwise fill the embedder's window and make every request look alike."""
    if request.kind == "generate":
        last = request.prompt
        system = request.system or ""
    else:
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        system = request.system or "\n".join(m.content for m in request.messages if m.role == "system")
    return f"{last}\n\n{system}".strip() if system else last


class Profiling:
    """The profilers a request goes through, and the embedder they share."""

    def __init__(self, profilers: list[Profiler], embedder: Embedder | None = None) -> None:
        self.profilers = profilers
        self.embedder = embedder
        for profiler in profilers:
            if getattr(profiler, "uses_embedder", False):
                profiler.embedder = embedder  # type: ignore[attr-defined]

    @classmethod
    def from_plugins(cls, pm: pluggy.PluginManager, settings: Settings) -> Profiling:
        profilers: list[Profiler] = collect(pm.hook.register_profilers, lambda p: p.name, settings=settings)
        embedders: list[Embedder] = collect(pm.hook.register_embedders, lambda e: e.name, settings=settings)
        wanted = settings.profile.embedder
        embedder = next((e for e in embedders if e.name == wanted), None)
        if embedder is None:
            known = ", ".join(e.name for e in embedders) or "none"
            raise BadRequest(f"embedder '{wanted}' is not registered (registered: {known})")
        return cls(profilers, embedder)

    def profile(self, request: Inference, embedding: np.ndarray | None = None) -> Profile:
        """Run every profiler; a known `embedding` (the replay's cache) skips the embedder."""
        profile = Profile(text=request_text(request), embedding=embedding)
        for profiler in self.profilers:
            started = time.perf_counter_ns()
            profiler.profile(request, profile)
            profile.timings_ns[profiler.name] = time.perf_counter_ns() - started
        return profile

    async def aprofile(self, request: Inference, embedding: np.ndarray | None = None) -> Profile:
        return await anyio.to_thread.run_sync(self.profile, request, embedding)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors for many texts at once (the replay benchmark embeds its whole file once)."""
        if self.embedder is None:
            raise BadRequest("no embedder is configured")
        return self.embedder.embed(texts)

    def warm(self) -> list[threading.Thread]:
        """Load the classifier and the embedder in background threads; returns the threads."""
        threads = []
        for item in [*self.profilers, self.embedder]:
            warm: Any = getattr(item, "warm", None)
            if callable(warm):
                threads.append(warm())
        return threads

"""Every hook a LocalForge plugin can implement. Hooks are always called with keyword arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from localforge.config import Settings

hookspec = pluggy.HookspecMarker("localforge")
hookimpl = pluggy.HookimplMarker("localforge")


@hookspec
def register_backends(register: Callable[[Any], None], settings: Settings) -> None:
    """Call register(backend) for each Backend this plugin provides (see localforge.backends.base)."""


@hookspec
def register_profilers(register: Callable[[Any], None], settings: Settings) -> None:
    """Call register(profiler) for each Profiler that adds fields to a request's Profile."""


@hookspec
def register_scorers(register: Callable[[Any], None], settings: Settings) -> None:
    """Call register(scorer) for each Scorer that adds a signal to a routing candidate's score."""


@hookspec
def register_embedders(register: Callable[[Any], None], settings: Settings) -> None:
    """Call register(embedder) for each Embedder that turns request text into a vector."""


@hookspec
def register_evaluators(register: Callable[[Any], None], settings: Settings) -> None:
    """Call register(evaluator) for each Evaluator that scores a sample of routed answers in the
    background (see localforge/evaluation.py); its scores teach the `auto` router."""


@hookspec
def startup(state: Any) -> Any:
    """Called once the server's resources are open; may return an awaitable."""


@hookspec
def shutdown(state: Any) -> Any:
    """Called before the server's resources close; may return an awaitable."""


@hookspec
def request_complete(record: dict[str, Any]) -> Any:
    """Called after a request's outcome was recorded, with the stored row; may return an awaitable."""

"""Registers the built-in llama.cpp backend exactly as a third-party plugin would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localforge.backends.base import LocalBackend
from localforge.config import Settings
from localforge.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[[Any], None], settings: Settings) -> None:
    from localforge.backends.llamacpp import LlamaCppBackend

    backend: LocalBackend = LlamaCppBackend(settings)  # mypy holds it to the whole contract
    register(backend)

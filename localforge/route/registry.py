"""Every model every backend offers, by canonical name; refreshed when models change."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import anyio.to_thread

from localforge import names
from localforge.backends.base import Backend, ModelCard
from localforge.errors import ModelNotFound

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Entry:
    card: ModelCard
    backend: Backend


class Registry:
    def __init__(self, backends: list[Backend], ttl_s: float = 5.0) -> None:
        self.backends = backends
        self.ttl_s = ttl_s
        self._entries: dict[str, Entry] = {}
        self._fresh_until = 0.0

    def _scan(self) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        for backend in self.backends:
            try:
                cards = backend.models()
            except Exception as exc:  # one broken backend must not hide the others' models
                log.warning("backend %s could not list its models: %s", backend.name, exc)
                continue
            for card in cards:
                entries.setdefault(card.name.lower(), Entry(card, backend))
        return entries

    async def refresh(self) -> None:
        self._entries = await anyio.to_thread.run_sync(self._scan)
        self._fresh_until = time.monotonic() + self.ttl_s

    async def entries(self) -> list[Entry]:
        if time.monotonic() >= self._fresh_until:
            await self.refresh()
        return sorted(self._entries.values(), key=lambda e: e.card.name)

    async def resolve(self, name: str) -> Entry:
        """The model a name refers to (`x` and `x:latest` alike); ModelNotFound otherwise."""
        key = names.canonical(name).lower()
        if time.monotonic() >= self._fresh_until or key not in self._entries:
            await self.refresh()
        entry = self._entries.get(key)
        if entry is None:
            raise ModelNotFound(name)
        return entry

    def backend(self, name: str) -> Backend | None:
        return next((b for b in self.backends if b.name == name), None)

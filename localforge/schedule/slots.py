"""The schedule stage: a per-model concurrency limit, a bounded queue, and Ollama's keep_alive.

A model stays resident for its keep_alive after its last request (the request's own, else the
server default); 0 unloads it as soon as it is idle, and FOREVER never expires it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio

from localforge.backends.base import ModelCard, Residency
from localforge.durations import FOREVER
from localforge.errors import ServerBusy
from localforge.route.registry import Entry

log = logging.getLogger(__name__)
QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"


@dataclass(slots=True)
class ModelState:
    limiter: anyio.Semaphore
    in_flight: int = 0
    waiting: int = 0
    keep_alive_s: float = 300.0
    expires_at: float = math.inf  # monotonic seconds
    entry: Entry | None = None
    loaded: bool = False
    last_used: float = field(default_factory=time.monotonic)


class Slots:
    def __init__(self, parallel: int, max_queue: int, default_keep_alive_s: float) -> None:
        self.parallel = parallel
        self.max_queue = max_queue
        self.default_keep_alive_s = default_keep_alive_s
        self._models: dict[str, ModelState] = {}

    def _state(self, card: ModelCard) -> ModelState:
        key = card.name.lower()
        if key not in self._models:
            self._models[key] = ModelState(anyio.Semaphore(self.parallel))
        return self._models[key]

    @property
    def queued(self) -> int:
        return sum(s.waiting for s in self._models.values())

    @asynccontextmanager
    async def slot(self, entry: Entry, keep_alive_s: float | None) -> AsyncIterator[None]:
        """Hold one of the model's slots for the duration of a request."""
        state = self._state(entry.card)
        if self.queued >= self.max_queue:
            raise ServerBusy(QUEUE_FULL)
        state.waiting += 1
        try:
            await state.limiter.acquire()
        finally:
            state.waiting -= 1
        state.in_flight += 1
        state.entry = entry
        state.loaded = True
        state.expires_at = math.inf
        try:
            yield
        finally:
            state.limiter.release()
            state.in_flight -= 1
            state.last_used = time.monotonic()
            if keep_alive_s is not None:
                state.keep_alive_s = keep_alive_s
            elif state.in_flight == 0:
                state.keep_alive_s = self.default_keep_alive_s
            if state.in_flight == 0:
                state.expires_at = time.monotonic() + state.keep_alive_s
                if state.keep_alive_s <= 0:
                    with anyio.CancelScope(shield=True):
                        await self._unload(state)

    def mark_loaded(self, entry: Entry, keep_alive_s: float | None) -> None:
        state = self._state(entry.card)
        state.entry, state.loaded = entry, True
        state.keep_alive_s = self.default_keep_alive_s if keep_alive_s is None else keep_alive_s
        state.expires_at = time.monotonic() + state.keep_alive_s

    async def unload(self, entry: Entry) -> None:
        await self._unload(self._state(entry.card))

    async def _unload(self, state: ModelState) -> None:
        if state.entry is None or state.in_flight:
            state.expires_at = time.monotonic()  # expire once idle
            return
        await state.entry.backend.unload(state.entry.card)
        state.loaded = False
        state.expires_at = math.inf

    async def expire(self) -> None:
        """Unload every idle model whose keep_alive has run out (called periodically)."""
        now = time.monotonic()
        for state in list(self._models.values()):
            if state.loaded and state.in_flight == 0 and state.expires_at <= now:
                log.info("unloading %s: keep_alive expired", state.entry.card.name if state.entry else "?")
                await self._unload(state)

    async def run_expiry(self, interval_s: float = 0.5) -> None:
        while True:
            await anyio.sleep(interval_s)
            await self.expire()

    def expiry_of(self, name: str) -> datetime | None:
        state = self._models.get(name.lower())
        if state is None or state.keep_alive_s == FOREVER:
            return None
        remaining = state.expires_at - time.monotonic()
        if remaining == math.inf:  # in use: Ollama shows now + duration
            remaining = state.keep_alive_s
        return datetime.now(UTC) + timedelta(seconds=max(0.0, remaining))

    def annotate(self, residency: Residency) -> Residency:
        residency.expires_at = self.expiry_of(residency.name)
        return residency

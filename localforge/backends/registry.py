"""Every model every backend offers, by canonical name; refreshed when models change.

An `Entry` is one model and the backend that serves it: what the router picks among, the
scheduler places and the server lists. What the router weighs about a model is in
`route/facts.py`.

A `Route` is the other kind of entry: a model that is a choice among the others per request
(`auto` and its presets). What makes routes (`Routes`, the `auto` model's routing) is given to
the registry once it is built; the registry lists its cards after the models they choose among,
and `find` answers a name it claims with a `Route`, so the server lists, shows and serves `auto`
as it does any model, and the pipeline routes what resolves to a route.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from localforge import names
from localforge.backends.base import Backend, Budgeted, ModelCard
from localforge.errors import ModelNotFound

log = logging.getLogger(__name__)


class Routes(Protocol):
    """Models made of the others: each request to one is routed to one of them."""

    def claims(self, name: str) -> bool:
        """Whether `name` is one of its models (any tag of it: an unknown one fails in `card`)."""

    def card(self, name: str, others: list[ModelCard]) -> ModelCard:
        """The card of the model `name`, over the `others` it may choose among; BadRequest for
        a name it claims but does not have."""

    def cards(self, others: list[ModelCard]) -> list[ModelCard]:
        """Its models' cards, over the `others`."""


@dataclass(slots=True)
class Entry:
    card: ModelCard
    backend: Backend

    def loaded_context(self, options: dict[str, Any]) -> int:
        """The context the model will be loaded with for these options (what a prompt must fit),
        as its backend works it out: options.num_ctx, else the model's parameters, else the
        server's default, within the context it was trained on. 0 when the backend cannot tell
        (a network backend: its server decides)."""
        if not isinstance(self.backend, Budgeted):
            return 0
        return int(self.backend.footprint(self.card, options, False)[1])


@dataclass(slots=True, frozen=True)
class Route:
    """A model served by routing each request to one of the others."""

    card: ModelCard
    routes: Routes


class Registry:
    """The models of every backend, refreshed in the background: a request never waits for a
    backend's listing (a remote endpoint may be slow or dead) but is served the last known list.

    Each backend is listed in its own worker thread, at most one listing per backend at a time
    (single-flight). Only a name not known at all waits, for at most `miss_wait_s`, in case it
    has just appeared (a file dropped into the models folder); `refresh()` waits for every
    backend (start-up, and after a pull, create or delete).
    """

    def __init__(self, backends: list[Backend], ttl_s: float = 5.0, miss_wait_s: float = 2.0) -> None:
        self.backends = backends
        self.ttl_s = ttl_s
        self.miss_wait_s = miss_wait_s
        self.background: TaskGroup | None = None  # where listings run; set by the app's lifespan
        self._cards: dict[str, list[ModelCard]] = {}  # backend name -> its last listing
        self._listing: dict[str, anyio.Event] = {}  # backend name -> set when its listing ends
        self._changed = anyio.Event()  # set (and replaced) whenever a listing ends
        self._entries: dict[str, Entry] = {}
        self._fresh_until = 0.0
        self.routes: Routes | None = None  # the `auto` model, once its routing is built

    async def _list(self, backend: Backend, done: anyio.Event) -> None:
        cards: list[ModelCard] = []
        try:
            cards = await anyio.to_thread.run_sync(backend.models, abandon_on_cancel=True)
        except Exception as exc:  # one broken backend must not hide the others' models
            log.warning("backend %s could not list its models: %s", backend.name, exc)
        finally:
            self._cards[backend.name] = cards
            entries: dict[str, Entry] = {}
            for b in self.backends:  # the first backend to offer a name keeps it
                for card in self._cards.get(b.name, []):
                    entries.setdefault(card.name.lower(), Entry(card, b))
            self._entries = entries
            self._listing.pop(backend.name, None)
            done.set()
            self._changed.set()
            self._changed = anyio.Event()

    def _start(self, tg: TaskGroup) -> list[anyio.Event]:
        """Start a listing of every backend that has none running; the events of all of them."""
        self._fresh_until = time.monotonic() + self.ttl_s
        for backend in self.backends:
            if backend.name not in self._listing:
                done = self._listing[backend.name] = anyio.Event()
                tg.start_soon(self._list, backend, done)
        return list(self._listing.values())

    async def refresh(self) -> None:
        """List every backend again and wait until all have answered."""
        if self.background is not None:
            for done in self._start(self.background):
                await done.wait()
            return
        async with anyio.create_task_group() as tg:
            self._start(tg)

    def _refresh_when_stale(self) -> None:
        if time.monotonic() >= self._fresh_until and self.background is not None:
            self._start(self.background)

    async def entries(self) -> list[Entry]:
        if self.background is None and time.monotonic() >= self._fresh_until:
            await self.refresh()
        self._refresh_when_stale()
        return sorted(self._entries.values(), key=lambda e: e.card.name)

    async def listed(self) -> list[ModelCard]:
        """Every model's card, as /api/tags and /v1/models list them: the backends' models, then
        the routes over them."""
        cards = [e.card for e in await self.entries()]
        return cards + (self.routes.cards(cards) if self.routes is not None else [])

    async def find(self, name: str) -> Entry | Route:
        """What a name refers to: a route, or a backend's model (see `resolve`)."""
        if self.routes is not None and self.routes.claims(name):
            return Route(self.routes.card(name, [e.card for e in await self.entries()]), self.routes)
        return await self.resolve(name)

    async def resolve(self, name: str) -> Entry:
        """The model a name refers to (`x` and `x:latest` alike); ModelNotFound otherwise."""
        key = names.canonical(name).lower()
        if key not in self._entries:
            with anyio.move_on_after(self.miss_wait_s):
                await self._wait_for(key)
        self._refresh_when_stale()
        entry = self._entries.get(key)
        if entry is None:
            raise ModelNotFound(name)
        return entry

    async def _wait_for(self, key: str) -> None:
        """Wait until a fresh listing offers `key`, or every backend has answered."""
        if self.background is None:
            await self.refresh()
            return
        self._start(self.background)
        while key not in self._entries and self._listing:
            await self._changed.wait()

    def backend(self, name: str) -> Backend | None:
        return next((b for b in self.backends if b.name == name), None)

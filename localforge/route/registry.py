"""Every model every backend offers, by canonical name; refreshed when models change.

Each model also carries the facts the router weighs (`RoutingFacts`): where it runs, what it
costs, how much it holds, what it can do and how good it is expected to be per task. They come
from the model's card, overridden by the `[router.models."name"]` section of the config, with
defaults for the demo models.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from localforge import names
from localforge.backends.base import Backend, ModelCard
from localforge.errors import ModelNotFound
from localforge.route.settings import TASKS, ModelFacts

log = logging.getLogger(__name__)


# Demo models: tiny and local; quality priors are modest guesses that outcomes will correct.
DEMO_FACTS: dict[str, ModelFacts] = {
    "smollm2:135m": ModelFacts(load_s=0.4, tokens_per_s=60.0, quality={
        "general": 0.35, "instruction": 0.4, "coding": 0.15, "math": 0.1, "reasoning": 0.2,
        "hard_reasoning": 0.05}),
    "gemma3:270m": ModelFacts(load_s=0.8, tokens_per_s=40.0, quality={
        "general": 0.3, "instruction": 0.25, "coding": 0.15, "math": 0.1, "reasoning": 0.2,
        "hard_reasoning": 0.05}),
}
DEFAULT_QUALITY = 0.5


@dataclass(slots=True)
class RoutingFacts:
    """What the router weighs about one model (prices in dollars per million tokens)."""

    name: str
    locality: str = "local"
    input_price: float = 0.0
    output_price: float = 0.0
    energy_price: float = 0.0
    context_length: int = 0  # 0 = unknown, no limit enforced
    capabilities: list[str] = field(default_factory=list)
    size: int = 0
    load_s: float = 0.0
    tokens_per_s: float = 30.0
    quality: dict[str, float] = field(default_factory=dict)

    def prior(self, task_probabilities: dict[str, float], task: str = "general") -> float:
        """The expected quality from the per-task priors, weighted by the task probabilities."""
        if not task_probabilities:
            return self.quality.get(task, self.quality.get("general", DEFAULT_QUALITY))
        general = self.quality.get("general", DEFAULT_QUALITY)
        total = sum(task_probabilities.values()) or 1.0
        return sum(p * self.quality.get(t, general) for t, p in task_probabilities.items()) / total

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Expected dollars for one call."""
        energy = self.energy_price * (input_tokens + output_tokens)
        return (self.input_price * input_tokens + self.output_price * output_tokens + energy) / 1e6

    def as_dict(self) -> dict[str, object]:
        return {"locality": self.locality, "input_price": self.input_price,
                "output_price": self.output_price, "energy_price": self.energy_price,
                "context_length": self.context_length, "capabilities": list(self.capabilities),
                "size": self.size, "load_s": self.load_s, "quality": dict(self.quality)}


def routing_facts(name: str, card: ModelCard | None, configured: dict[str, ModelFacts]) -> RoutingFacts:
    """The card's facts, then the demo defaults, then the config's, later ones winning."""
    facts = RoutingFacts(name=name)
    if card is not None:
        facts.locality = card.locality
        facts.context_length = card.context_length
        facts.capabilities = list(card.capabilities)
        facts.size = card.size
        # network backends put their endpoint's prices here
        facts.input_price = float(card.model_info.get("localforge.input_price", 0.0) or 0.0)
        facts.output_price = float(card.model_info.get("localforge.output_price", 0.0) or 0.0)
    for source in (DEMO_FACTS.get(name), configured.get(name)):
        if source is None:
            continue
        facts.locality = source.locality or facts.locality
        facts.input_price = source.input_price or facts.input_price
        facts.output_price = source.output_price or facts.output_price
        facts.energy_price = source.energy_price
        facts.context_length = source.context_length or facts.context_length
        if source.capabilities is not None:
            facts.capabilities = list(source.capabilities)
        facts.size = source.size or facts.size
        facts.load_s = source.load_s if source.load_s is not None else facts.load_s
        facts.tokens_per_s = source.tokens_per_s or facts.tokens_per_s
        facts.quality = {**facts.quality, **{t: q for t, q in source.quality.items() if t in TASKS}}
    return facts


@dataclass(slots=True)
class Entry:
    card: ModelCard
    backend: Backend

    def loaded_context(self, options: dict[str, Any]) -> int:
        """The context the model will be loaded with for these options (what a prompt must fit),
        as its backend works it out: options.num_ctx, else the model's parameters, else the
        server's default, within the context it was trained on. 0 when the backend cannot tell
        (a network backend: its server decides)."""
        footprint = getattr(self.backend, "footprint", None)
        if not callable(footprint):
            return 0
        return int(footprint(self.card, options, False)[1])


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

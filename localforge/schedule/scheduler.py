"""The schedule stage: the policy of core.py/policy.py driven by the real clock and real backends.

A request takes a slot with `async with scheduler.slot(entry, options, keep_alive_s) as grant:`.
It waits in its configuration's queue until the policy starts it (loading the model first, and
evicting others, if it has to); it leaves the queue if it is cancelled or its HTTP client
disconnects while waiting (`until_disconnected`, the signal its request carries), and nothing
runs for it. `run()` is the background task that executes the policy's decisions; the app's
lifespan starts it.

Read-only API for the router (cheap, no I/O, safe to call on every request):

- `is_resident(model_name) -> bool`: a configuration of the model is loaded and ready now.
- `expected_load_s(card) -> float`: 0 if resident; else the measured load time of the model
  (the mean of its loads so far), else an estimate from its size (0.5 s + 1 s per GB).
- `expected_wait_s(model_name) -> float | None`: how long a request arriving now would wait for a
  slot (the queue over the slots at the measured service time, plus a load when not ready, plus
  the busy residents' work when it must wait for their memory); None for a model it has not seen.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from anyio.abc import TaskGroup

from localforge import names
from localforge.backends.base import (
    Budgeted,
    Measured,
    ModelCard,
    OverheadMeasured,
    Residency,
    Slotted,
    Watched,
)
from localforge.backends.registry import Entry
from localforge.config import Settings
from localforge.errors import BackendFailed, LocalForgeError, RunnerCrashed, ServerBusy
from localforge.inference import UntilDisconnected, unless_disconnected
from localforge.options import load_key
from localforge.resources.budget import Budget, detect, gpu_used_bytes, measured, process_rss_bytes
from localforge.resources.placement import Pools, Shape, as_ollama_shows, processor
from localforge.schedule.core import Configuration, Core, LoadAction, StartAction, Ticket, UnloadAction
from localforge.schedule.meter import Meter
from localforge.schedule.policy import POLICIES

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Placement:
    """How to load one configuration: the model's entry and its load options."""

    entry: Entry
    options: dict[str, Any]
    embedding: bool
    context_length: int


@dataclass(slots=True)
class Copy:
    """One configuration as the scheduler drives it: how to load it (the latest request's
    placement) and what its loads and unloads leave for the requests around them."""

    placement: Placement
    fresh_ns: int = 0  # the load whose first requests are not started yet, in ns
    unloaded: anyio.Event | None = None  # set when an unload that `unload()` waits for is done


@dataclass(slots=True)
class Claim:
    """One request's claim on a slot, from its ticket's submission until it starts or fails."""

    granted: anyio.Event = field(default_factory=anyio.Event)
    failure: LocalForgeError | None = None
    load_ns: int = 0  # the load it waited for


@dataclass(slots=True)
class Grant:
    waited_s: float
    load_ns: int = 0  # the load this request waited for, reported as Ollama's load_duration


@dataclass(slots=True, frozen=True)
class Occupant:
    """A configuration that holds memory or has requests waiting, as the dashboard shows it."""

    key: str
    model: str
    state: str  # loading | ready | unloading | absent (waiting to be loaded)
    footprint: int
    in_flight: int
    queued: int
    parallel: int
    expires_in_s: float | None  # None: kept forever; while in use, the keep-alive it restarts from
    in_use: bool


class Scheduler:
    def __init__(self, policy: Core, budget: Budget,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.budget = budget
        self.clock = clock
        self.meter = Meter()
        self._copies: dict[str, Copy] = {}  # by configuration key
        self._claims: dict[int, Claim] = {}  # by ticket id, until the ticket starts or fails
        self._wakeup = anyio.Event()
        self._ids = itertools.count(1)

    @classmethod
    def from_settings(cls, settings: Settings) -> Scheduler:
        found = detect(settings.vram_budget, settings.ram_budget)
        if found.warning:
            log.warning("%s", found.warning)
        log.info("memory budget: %.2f GB of VRAM (%s), %.2f GB of RAM (%s)", found.pools.vram / 1e9,
                 found.vram_source, found.pools.ram / 1e9, found.ram_source)
        policy = POLICIES[settings.schedule_policy](
            found.pools, parallel=settings.parallel, max_queue=settings.max_queue,
            default_keep_alive_s=settings.default_keep_alive_s,
            starvation_s=settings.starvation_s, min_resident_s=settings.min_resident_s)
        return cls(policy, found)

    # keys and estimates
    @staticmethod
    def key(card: ModelCard, options: dict[str, Any], embedding: bool, context: int = 0) -> str:
        """The configuration's name; with the context it resolves to, so that asking for the
        default `num_ctx` and asking for nothing are one configuration."""
        resolved = {**options, "num_ctx": context} if context else options
        parts = [card.name.lower(), *(["embed"] if embedding else [])]
        return " ".join(parts + [f"{k}={v}" for k, v in load_key(resolved)])

    def _footprint(self, entry: Entry, options: dict[str, Any],
                   embedding: bool) -> tuple[int | Shape, int]:
        if isinstance(entry.backend, Budgeted):
            size, context = entry.backend.footprint(entry.card, options, embedding)
            return (size if isinstance(size, Shape) else int(size)), int(context)
        return entry.card.size, entry.card.context_length

    def _learn_overhead(self, entry: Entry) -> None:
        """Take up each runner's fixed VRAM once the backend has measured it (NVML on its first
        runner that used the GPU, minus the buffers llama.cpp reported): every placement from
        then on reserves it."""
        backend = entry.backend
        found = backend.runner_overhead() if isinstance(backend, OverheadMeasured) and self.budget.gpu else None
        if found is not None and int(found) != self.policy.overhead:
            log.info("each runner holds %.2f GB of VRAM beside its buffers (CUDA context, cuBLAS "
                     "workspace): every placement reserves it", int(found) / 1e9)
            self.policy.know_overhead(int(found))

    @staticmethod
    def _wanted_layers(options: dict[str, Any]) -> int | None:
        """The user's `num_gpu` (layers on the GPU), which wins over placement; -1 is automatic."""
        value = options.get("num_gpu")
        return None if value is None or int(value) < 0 else int(value)

    @staticmethod
    def _parallel(entry: Entry) -> int | None:
        """The model's own number of slots, when its backend has one (else the policy's)."""
        return int(entry.backend.parallel(entry.card)) if isinstance(entry.backend, Slotted) else None

    def expected_load_s(self, card: ModelCard) -> float:
        if self.is_resident(card.name):
            return 0.0
        load_times = [c.load_s for c in self._configs(card.name) if c.loads]
        if load_times:
            return sum(load_times) / len(load_times)
        return 0.5 + card.size / 1e9

    # the router's view
    def _configs(self, model_name: str) -> list[Any]:
        wanted = names.canonical(model_name).lower()
        return [c for c in self.policy.configs.values() if c.model.lower() == wanted]

    def is_resident(self, model_name: str) -> bool:
        return any(c.state == "ready" for c in self._configs(model_name))

    def expected_wait_s(self, model_name: str) -> float | None:
        """The shortest expected wait for a slot among the model's configurations; None when
        the scheduler has not seen the model yet (its wait is then a load, if anything)."""
        return min((self.policy.expected_wait_s(c) for c in self._configs(model_name)), default=None)

    # requests
    @asynccontextmanager
    async def slot(self, entry: Entry, options: dict[str, Any], keep_alive_s: float | None,
                   *, embedding: bool = False,
                   until_disconnected: UntilDisconnected | None = None) -> AsyncIterator[Grant]:
        """Wait for the model to be resident and a slot free; hold the slot while serving.
        `until_disconnected` is the request's client going away: it leaves the queue then."""
        size, context = self._footprint(entry, options, embedding)
        self._learn_overhead(entry)
        key = self.key(entry.card, options, embedding, context)
        placement = Placement(entry, dict(options), embedding, context)
        if (copy := self._copies.get(key)) is None:
            self._copies[key] = Copy(placement)
        else:
            copy.placement = placement
        self.policy.register(key, entry.card.name, size, self.expected_load_s(entry.card) or 0.5,
                             self._parallel(entry), self._wanted_layers(options))
        ticket = Ticket(next(self._ids), key, self.clock(), keep_alive_s)
        try:
            self.policy.submit(ticket)
        except ServerBusy:
            self.meter.rejected += 1
            raise
        claim = self._claims[ticket.id] = Claim()
        self._wake()
        try:  # a client that goes away first leaves the queue, and nothing runs for it
            await unless_disconnected(until_disconnected, claim.granted.wait)
        except BaseException:
            self._withdraw(ticket)
            raise
        if claim.failure is not None:
            raise claim.failure
        waited = (ticket.started or self.clock()) - ticket.arrived
        self.meter.waited(entry.card.name, waited)
        try:
            yield Grant(waited, claim.load_ns)
        except RunnerCrashed:
            self._lost(key, quietly=True)  # the crash is the backend's to log
            raise
        finally:
            self.policy.finish(ticket.id, self.clock())
            self._wake()

    def _withdraw(self, ticket: Ticket) -> None:
        self._claims.pop(ticket.id, None)
        if self.policy.cancel(ticket.id):
            self.meter.canceled += 1
        elif ticket.started is not None:
            self.policy.finish(ticket.id, self.clock())
        self._wake()

    async def unload(self, entry: Entry) -> None:
        """Ollama's unload form: every configuration of the model goes once idle; wait for the
        idle ones so that a following /api/ps no longer lists them."""
        now = self.clock()
        waits = []
        for config in self._configs(entry.card.name):
            if config.state == "absent":
                continue
            self.policy.expire(config.key, now)
            if config.in_flight == 0 and not config.queue:
                copy = self._copies[config.key]
                if copy.unloaded is None:
                    copy.unloaded = anyio.Event()
                waits.append(copy.unloaded)
        self._wake()
        with anyio.move_on_after(30):
            for event in waits:
                await event.wait()

    def _lost(self, key: str, quietly: bool = False) -> None:
        """A configuration's runner died: it no longer holds memory, and the next request for it
        loads it again."""
        config = self.policy.config(key)
        if config.state in ("ready", "loading"):
            self.policy.unloaded(key)
            self.meter.crashes[config.model] += 1
            log.log(logging.INFO if quietly else logging.WARNING, "%s is no longer resident: its runner died", key)

    def _notice_lost(self) -> None:
        """Find idle configurations whose backend no longer holds them (a runner that died
        between requests)."""
        for config in self.policy.configs.values():
            if config.state != "ready" or config.in_flight:
                continue
            place = self._copies[config.key].placement
            backend = place.entry.backend
            if isinstance(backend, Watched) and not backend.holds(place.entry.card, place.options,
                                                                   place.embedding):
                self._lost(config.key)

    # the background task
    def _wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Execute the policy's decisions until cancelled."""
        async with anyio.create_task_group() as tg:
            while True:
                self._wakeup = anyio.Event()
                now = self.clock()
                self._notice_lost()
                self._execute(self.policy.decide(now), tg)
                delay = min(self.policy.next_wake(now) - now, 1.0)
                with anyio.move_on_after(max(delay, 0.001)):
                    await self._wakeup.wait()

    def _execute(self, actions: list[Any], tg: TaskGroup) -> None:
        for action in actions:
            if isinstance(action, StartAction):
                copy = self._copies[action.key]
                load_ns, copy.fresh_ns = copy.fresh_ns, 0
                for ticket_id in action.tickets:
                    if claim := self._claims.pop(ticket_id, None):
                        claim.load_ns = load_ns
                        claim.granted.set()
            elif isinstance(action, LoadAction):
                tg.start_soon(self._load, action.key, action.gpu_layers)
            elif isinstance(action, UnloadAction):
                tg.start_soon(self._unload, action.key, action.reason)

    async def _load(self, key: str, gpu_layers: int) -> None:
        copy = self._copies[key]
        place = copy.placement
        config = self.policy.config(key)
        before = self._memory_now()
        started = time.perf_counter_ns()
        try:
            if config.shape.layers:  # a model with layers to place: the placement goes with it
                await place.entry.backend.load(place.entry.card, place.options,
                                               embedding=place.embedding, gpu_layers=gpu_layers)
            elif isinstance(place.entry.backend, Budgeted):
                await place.entry.backend.load(place.entry.card, place.options,
                                               embedding=place.embedding)
            else:
                await place.entry.backend.load(place.entry.card, place.options)
        except Exception as exc:
            error = exc if isinstance(exc, LocalForgeError) else BackendFailed(
                f"{place.entry.backend.name} could not load model '{place.entry.card.name}'")
            log.warning("loading %s failed: %s", key, exc)
            if isinstance(exc, RunnerCrashed):  # its runner died while loading
                self.meter.crashes[config.model] += 1
            for ticket_id in self.policy.load_failed(key):
                if claim := self._claims.pop(ticket_id, None):
                    claim.failure = error
                    claim.granted.set()
            self._wake()
            return
        elapsed = time.perf_counter_ns() - started
        self._learn_overhead(place.entry)
        share = config.reserved
        # against the estimate with the overhead known now: a first runner's is in its figure
        used = measured(self._load_memory(place, before), config.shape.memory(gpu_layers))
        self.policy.loaded(key, self.clock(), used, elapsed / 1e9)
        copy.fresh_ns = elapsed
        self.meter.loads[config.model] += 1
        self.meter.load_seconds[config.model] += elapsed / 1e9
        log.info("loaded %s in %.2f s: %s (%d bytes of VRAM, %d of RAM)", key, elapsed / 1e9,
                 processor(config.reserved), config.reserved.vram, config.reserved.ram)
        if config.reserved.vram > share.vram and (over := self.policy.over_budget()):
            log.warning("%s took %d bytes of VRAM, %d more than its placement's share, and the "
                        "models now hold %d bytes over the VRAM budget: idle models are evicted, "
                        "or it is loaded again with fewer layers", key, config.reserved.vram,
                        config.reserved.vram - share.vram, over)
        self._wake()

    def _load_memory(self, place: Placement, before: Pools | None) -> Pools | None:
        """What the load used from each pool: the backend's own figure when it measures one (a
        runner's memory), else this process's and the GPUs' memory around the load."""
        if isinstance(place.entry.backend, Measured):
            found = place.entry.backend.measured_memory(place.entry.card, place.options, place.embedding)
            return found if isinstance(found, Pools) else None
        after = self._memory_now()
        return None if before is None or after is None else after - before

    def _memory_now(self) -> Pools | None:
        ram = process_rss_bytes()
        vram = gpu_used_bytes() if self.budget.gpu else 0
        return None if ram is None or vram is None else Pools(vram, ram)

    async def _unload(self, key: str, reason: str) -> None:
        copy = self._copies[key]
        place = copy.placement
        try:
            with anyio.CancelScope(shield=True):
                if isinstance(place.entry.backend, Budgeted):
                    await place.entry.backend.unload(
                        place.entry.card, options=place.options, embedding=place.embedding)
                else:
                    await place.entry.backend.unload(place.entry.card)
        finally:
            self.policy.unloaded(key)
            if reason == "evict":
                self.meter.evictions[place.entry.card.name] += 1
            log.info("unloaded %s (%s)", key, reason)
            if copy.unloaded is not None:
                copy.unloaded.set()
                copy.unloaded = None
            self._wake()

    # the dashboard
    def occupants(self) -> list[Occupant]:
        """Configurations holding memory or with waiting requests, largest first."""
        now, out = self.clock(), []
        for c in self.policy.configs.values():
            if c.state == "absent" and not c.queue:
                continue
            in_use = bool(c.in_flight or c.queue) or c.expires_at == math.inf
            out.append(Occupant(c.key, c.model, c.state, c.footprint, c.in_flight, len(c.queue),
                                c.parallel, _expires_in_s(c, now), in_use))
        return sorted(out, key=lambda o: (-o.footprint, o.key))

    # /api/ps
    def annotate(self, residency: Residency) -> Residency:
        """Fill in what the scheduler knows: the measured size, where it lives, when it expires."""
        configs = [c for c in self._configs(residency.name) if c.state != "absent"]
        match = [c for c in configs
                 if self._copies[c.key].placement.context_length == residency.context_length]
        config = (match or configs or [None])[0]
        if config is None:
            return residency
        shown = as_ollama_shows(config.shape, config.gpu_layers, config.reserved)
        residency.size, residency.size_vram = shown.total, shown.vram
        remaining = _expires_in_s(config, self.clock())
        residency.expires_at = None if remaining is None else datetime.now(UTC) + timedelta(seconds=remaining)
        return residency


def _expires_in_s(config: Configuration, now: float) -> float | None:
    """Seconds until an idle configuration unloads; None if kept forever. While in use, its
    keep-alive in full (Ollama shows now + duration)."""
    if config.keep_alive_s == math.inf:
        return None
    remaining = config.expires_at - now
    if config.in_flight or config.queue or remaining == math.inf:
        return config.keep_alive_s
    return max(0.0, remaining)

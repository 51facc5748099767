"""The scheduling state machine: per-model queues, residency and a memory budget, with no I/O.

Nothing here sleeps, reads a clock or touches a backend. Callers pass `now` (seconds on any
monotonic clock) into every event, then ask the policy `decide(now)` for what to do next: start
queued requests, load a model, unload one. The async layer (`scheduler.py`) executes those actions
against real backends; the benchmark's `--simulate` mode and the property tests execute them
against a fake clock. Both drive this very code.

A `Configuration` is one model with one set of load options (another `num_ctx` is
another configuration: another resident copy with another footprint). Memory is two pools, VRAM
and RAM (`placement.Pools`; VRAM is 0 without a GPU): each load gets a placement, how many of its
layers go on the GPU (`placement.place`), and reserves what that placement takes from each pool.
Two policies share the state and differ only in `plan`: `Fifo` is what Ollama does (one global
queue in arrival order, swapping on demand), `Forge` is LocalForge's (see policy.py).

Every runner that uses the GPU holds a fixed overhead there beside its buffers (`overhead`: none
until the backend has measured it on a first runner, then reserved in every placement). A load
that measures more VRAM than its placement's share can leave the pool over budget; `decide` then
restores the budget before anything else (`restore`): it evicts idle models, least recently used
first, or reloads the one over its share with the layers its corrected shape allows.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from localforge.errors import ServerBusy, Unavailable
from localforge.resources.placement import CPU_SPEED, Pools, Shape, place

NOTHING = Pools(0, 0)

QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"
State = Literal["absent", "loading", "ready", "unloading"]


@dataclass(slots=True)
class Ticket:
    """A request waiting for, or holding, a slot of its configuration."""

    id: int
    key: str
    arrived: float
    keep_alive_s: float | None = None  # None: the server default
    started: float | None = None


@dataclass(slots=True)
class Configuration:
    """One resident configuration of a model, and what the scheduler knows about it."""

    key: str
    model: str  # the model's canonical name
    shape: Shape  # what each part takes: the estimate, corrected by what loading measured
    load_s: float  # expected seconds to load: the estimate, then the measured time
    service_s: float = 1.0  # expected seconds per request with every layer on the GPU, learned
    parallel: int = 1  # requests it serves at once (a runner's slots)
    wanted_layers: int | None = None  # the user's `num_gpu`, which placement must follow
    gpu_layers: int = 0  # its placement: the load's under way or done, else the best it could get
    reserved: Pools = NOTHING  # what it holds while resident: the estimate, then the measured
    cpu_speed: float = CPU_SPEED
    last_arrival: float | None = None
    mean_gap_s: float = math.inf  # between its requests' arrivals, smoothed: its demand
    queue: deque[Ticket] = field(default_factory=deque)
    state: State = "absent"
    in_flight: int = 0
    loaded_at: float = 0.0
    last_used: float = 0.0
    keep_alive_s: float = 300.0
    expires_at: float = math.inf  # only meaningful while idle and resident
    loads: int = 0

    @property
    def holds_memory(self) -> bool:
        return self.state != "absent"

    @property
    def footprint(self) -> int:
        """Bytes it takes (in both pools) while resident, or would at its placement."""
        return (self.reserved if self.holds_memory else self.shape.memory(self.gpu_layers)).total

    @property
    def expected_service_s(self) -> float:
        """Expected seconds per request at its placement (partial offload decodes slower)."""
        return self.service_s * self.shape.slowdown(self.gpu_layers, self.cpu_speed)

    @property
    def idle(self) -> bool:
        return self.state == "ready" and self.in_flight == 0

    @property
    def expected_wait_s(self) -> float:
        """Seconds a request arriving now would wait for a slot: the requests ahead of it (those
        queued, and those in flight beyond a free slot) served `parallel` at a time at the
        measured service time, plus a load when the model is not ready."""
        ahead = len(self.queue) + self.in_flight - self.parallel + 1
        wait = max(ahead, 0) * self.expected_service_s / self.parallel
        return wait if self.state == "ready" else wait + self.load_s


@dataclass(slots=True, frozen=True)
class StartAction:
    key: str
    tickets: tuple[int, ...]


@dataclass(slots=True, frozen=True)
class LoadAction:
    key: str
    gpu_layers: int = 0


@dataclass(slots=True, frozen=True)
class UnloadAction:
    key: str
    reason: Literal["evict", "expired", "over budget"]


Action = StartAction | LoadAction | UnloadAction


class Core:
    """State and events shared by every policy; subclasses implement `plan`."""

    name = "core"

    def __init__(self, budget: int | Pools, *, parallel: int = 1, max_queue: int = 512,
                 default_keep_alive_s: float = 300.0, starvation_s: float = 30.0,
                 min_resident_s: float = 5.0, partial: bool = True,
                 cpu_speed: float = CPU_SPEED) -> None:
        self.pools = budget if isinstance(budget, Pools) else Pools(0, budget)
        self.partial = partial  # partial offload allowed (else every layer on the GPU, or refused)
        self.cpu_speed = cpu_speed
        self.parallel = max(1, parallel)
        self.max_queue = max_queue
        self.default_keep_alive_s = default_keep_alive_s
        self.starvation_s = starvation_s
        self.min_resident_s = min_resident_s
        self.overhead = 0  # each runner's own VRAM beside its buffers, once measured
        self.configs: dict[str, Configuration] = {}
        self._tickets: dict[int, Ticket] = {}

    # what the policy and its readers can see
    @property
    def gpu(self) -> bool:
        return self.pools.vram > 0

    @property
    def budget(self) -> int:
        return self.pools.total

    @property
    def used(self) -> Pools:
        total = NOTHING
        for config in self.configs.values():
            if config.holds_memory:
                total = total + config.reserved
        return total

    def free(self, *, counting_unloads: bool = False) -> Pools:
        """Memory no configuration holds; with `counting_unloads`, also what unloads under way
        will give back."""
        free = self.pools - self.used
        if counting_unloads:
            for config in self.configs.values():
                if config.state == "unloading":
                    free = free + config.reserved
        return free

    def over_budget(self) -> int:
        """Bytes of VRAM held beyond the budget, once the unloads under way are done (0 if none)."""
        return max(0, -self.free(counting_unloads=True).vram) if self.gpu else 0

    def placement(self, config: Configuration, free: Pools) -> int | None:
        """The layers on the GPU that `free` allows this configuration, or None if it cannot fit."""
        return place(config.shape, free, config.wanted_layers, gpu=self.gpu, partial=self.partial)

    def expected_wait_s(self, config: Configuration) -> float:
        """Seconds a request arriving now would wait for a slot of `config` (its own queue and
        load: `Configuration.expected_wait_s`), and, when it is not resident and the memory no
        one holds cannot take it as well as the whole budget could, the time the busy resident
        models take to serve their work first (a policy serves a resident queue before a swap),
        at most the starvation bound."""
        wait = config.expected_wait_s
        if config.holds_memory:
            return wait
        best, now = self.placement(config, self.pools), self.placement(config, self.free())
        if now is not None and (best is None or now >= best):
            return wait
        busy = sum((len(c.queue) + c.in_flight) * c.expected_service_s / c.parallel
                   for c in self.configs.values() if c is not config and c.holds_memory)
        return wait + min(busy, self.starvation_s)

    @property
    def queued(self) -> int:
        return sum(len(c.queue) for c in self.configs.values())

    def config(self, key: str) -> Configuration:
        return self.configs[key]

    def waiting_since(self, config: Configuration) -> float:
        return config.queue[0].arrived if config.queue else math.inf

    # events
    def register(self, key: str, model: str, size: int | Shape, load_s: float,
                 parallel: int | None = None, wanted_layers: int | None = None) -> Configuration:
        """Make a configuration known (or refresh its estimates while it is not resident).
        `size` is bytes (all in RAM) or a `Shape` to place; `parallel` defaults to the policy's;
        `wanted_layers` is the user's `num_gpu`."""
        shape = size if isinstance(size, Shape) else Shape.flat(size)
        if self.gpu and shape.layers:
            shape = shape.with_overhead(self.overhead)
        config = self.configs.get(key)
        if config is None:
            config = self.configs[key] = Configuration(key, model, shape, load_s,
                                                       keep_alive_s=self.default_keep_alive_s,
                                                       parallel=max(1, parallel or self.parallel),
                                                       wanted_layers=wanted_layers, cpu_speed=self.cpu_speed)
        elif config.state == "absent" and config.loads == 0:
            config.shape, config.load_s = shape, load_s
        if config.state == "absent":
            config.gpu_layers = self.placement(config, self.pools) or 0
        return config

    def submit(self, ticket: Ticket) -> None:
        """Queue a request; ServerBusy when the queue is full, Unavailable when it can never fit."""
        config = self.configs[ticket.key]
        if self.placement(config, self.pools) is None:
            raise Unavailable(self._never_fits(config))
        if self.queued >= self.max_queue:
            raise ServerBusy(QUEUE_FULL, retry_after=self.retry_after())
        config.queue.append(ticket)
        self._tickets[ticket.id] = ticket
        if config.last_arrival is not None:
            gap = max(0.0, ticket.arrived - config.last_arrival)
            config.mean_gap_s = gap if config.mean_gap_s == math.inf else 0.8 * config.mean_gap_s + 0.2 * gap
        config.last_arrival = ticket.arrived

    def _never_fits(self, config: Configuration) -> str:
        if not self.gpu:
            return (f"model '{config.model}' needs {config.shape.total} bytes but the memory "
                    f"budget is {self.pools.ram} bytes")
        g = config.shape.clamp(config.shape.max_layers if config.wanted_layers is None
                               else config.wanted_layers)
        need = config.shape.memory(g)
        how = (f"with num_gpu {config.wanted_layers}" if config.wanted_layers is not None else
               "with every layer on the GPU" if not self.partial else "at best")
        return (f"model '{config.model}' {how} needs {need.vram} bytes of VRAM and {need.ram} "
                f"bytes of RAM, but the budget is {self.pools.vram} bytes of VRAM and "
                f"{self.pools.ram} bytes of RAM")

    def retry_after(self) -> int:
        """Seconds a refused client should wait: roughly how long the queue takes to drain."""
        work = sum(len(c.queue) * c.expected_service_s / c.parallel for c in self.configs.values())
        return max(1, min(60, math.ceil(work / max(1, len(self.configs)))))

    def cancel(self, ticket_id: int) -> bool:
        """Take a request out of its queue; False if it already started (or is unknown)."""
        ticket = self._tickets.get(ticket_id)
        if ticket is None or ticket.started is not None:
            return False
        self.configs[ticket.key].queue.remove(ticket)
        del self._tickets[ticket_id]
        return True

    def finish(self, ticket_id: int, now: float) -> float:
        """A started request is done; returns its service time. The last keep_alive wins."""
        ticket = self._tickets.pop(ticket_id)
        config = self.configs[ticket.key]
        config.in_flight -= 1
        config.last_used = now
        served = now - (ticket.started if ticket.started is not None else now)
        # learned as if on the GPU: a measured request at a partial placement corrects the model
        full_gpu = served / config.shape.slowdown(config.gpu_layers, self.cpu_speed)
        config.service_s = 0.7 * config.service_s + 0.3 * full_gpu
        config.keep_alive_s = (self.default_keep_alive_s if ticket.keep_alive_s is None
                               else ticket.keep_alive_s)
        if config.in_flight == 0:
            config.expires_at = now + config.keep_alive_s
        if config.keep_alive_s == 0:
            # Ollama has one runner per model: keep_alive 0 unloads the model, so its other
            # resident configurations (another num_ctx, the embedding copy) go too once idle
            for sibling in self.configs.values():
                if sibling.model == config.model and sibling is not config:
                    self.expire(sibling.key, now)
        return served

    def know_overhead(self, overhead: int) -> None:
        """The backend measured each runner's fixed VRAM: every placement from now on reserves it."""
        self.overhead = max(0, int(overhead))
        for config in self.configs.values():
            if config.shape.layers:
                config.shape = config.shape.with_overhead(self.overhead)

    def loaded(self, key: str, now: float, measured: Pools | None, load_s: float) -> None:
        """The load is done; `measured` (what it took from each pool, if known, the runner's
        overhead included) replaces the estimate it reserved and corrects the shape for the
        configuration's later loads. If that leaves VRAM over budget, `decide` restores it."""
        config = self.configs[key]
        config.state, config.loaded_at, config.last_used = "ready", now, now
        config.load_s, config.loads = load_s, config.loads + 1
        config.expires_at = now + config.keep_alive_s
        if measured is not None and measured.total:
            config.shape = config.shape.corrected(config.gpu_layers, measured)
            config.reserved = measured

    def load_failed(self, key: str) -> list[int]:
        """The load failed: forget the reservation and fail everything queued for it."""
        config = self.configs[key]
        config.state = "absent"
        failed = [t.id for t in config.queue]
        for ticket_id in failed:
            del self._tickets[ticket_id]
        config.queue.clear()
        return failed

    def unloaded(self, key: str) -> None:
        config = self.configs[key]
        config.state, config.expires_at = "absent", math.inf

    def expire(self, key: str, now: float) -> None:
        """Ollama's `keep_alive: 0` form: unload once idle."""
        config = self.configs[key]
        config.keep_alive_s, config.expires_at = 0.0, now

    def keep(self, key: str, now: float, keep_alive_s: float | None) -> None:
        """An explicit load sets how long the model stays (the empty-prompt load form)."""
        config = self.configs[key]
        config.keep_alive_s = self.default_keep_alive_s if keep_alive_s is None else keep_alive_s
        config.last_used = now
        if config.in_flight == 0:
            config.expires_at = now + config.keep_alive_s

    # decisions
    def decide(self, now: float) -> list[Action]:
        """Everything to do now; callers execute the actions and report back through events."""
        actions: list[Action] = [UnloadAction(c.key, "expired") for c in self.configs.values()
                                 if c.idle and not c.queue and c.expires_at <= now]
        for action in actions:
            self.configs[action.key].state = "unloading"
        actions += self.restore()
        actions += self.plan(now)
        return actions

    def restore(self) -> list[Action]:
        """Bring VRAM back within the budget after a load measured more than its share: evict
        idle models that hold VRAM, least recently used first, if they are enough; else unload
        the latest load that went over its share (when idle), to be loaded again with the layers
        its corrected shape allows. Busy models are waited for."""
        over = self.over_budget()
        if not over:
            return []
        holders = [c for c in self.configs.values() if c.state == "ready" and c.reserved.vram]
        fresh = max(holders, key=lambda c: c.loaded_at, default=None)
        idle = sorted((c for c in holders if c.idle and c is not fresh),
                      key=lambda c: (bool(c.queue), c.last_used))
        evict: list[Configuration] = []
        for config in idle:
            if over <= 0:
                break
            evict.append(config)
            over -= config.reserved.vram
        if over > 0:
            if fresh is None or not fresh.idle:
                return []
            evict = [fresh]
        for config in evict:
            config.state = "unloading"
        return [UnloadAction(c.key, "over budget") for c in evict]

    def plan(self, now: float) -> list[Action]:
        raise NotImplementedError

    def next_wake(self, now: float) -> float:
        """When `decide` must run again if no event comes first (expiry, deadlines); > now."""
        return min([t for t in self.wake_times(now) if t > now], default=math.inf)

    def wake_times(self, now: float) -> list[float]:
        return [c.expires_at for c in self.configs.values() if c.idle and not c.queue]

    # helpers for policies
    def start(self, config: Configuration, now: float, limit: int | None = None) -> StartAction | None:
        room = config.parallel - config.in_flight if limit is None else limit
        taken: list[int] = []
        while config.queue and room > 0:
            ticket = config.queue.popleft()
            ticket.started = now
            taken.append(ticket.id)
            room -= 1
        if not taken:
            return None
        config.in_flight += len(taken)
        config.expires_at = math.inf
        return StartAction(config.key, tuple(taken))

    def begin_load(self, config: Configuration, gpu_layers: int) -> LoadAction:
        config.state, config.gpu_layers = "loading", gpu_layers
        config.reserved = config.shape.memory(gpu_layers)
        return LoadAction(config.key, gpu_layers)

    def begin_unload(self, config: Configuration) -> UnloadAction:
        config.state = "unloading"
        return UnloadAction(config.key, "evict")

    def placements_after(self, target: Configuration,
                         candidates: list[Configuration]) -> Iterator[tuple[int, int | None]]:
        """For each prefix of `candidates` (none first, then one more at a time): how many it
        evicts, and the placement `target` would get in what is free, what unloads under way
        will give back and what that prefix holds (None where it still cannot fit)."""
        free = self.free(counting_unloads=True)
        for count in range(len(candidates) + 1):
            if count:
                free = free + candidates[count - 1].reserved
            yield count, self.placement(target, free)

    def loading(self) -> bool:
        return any(c.state == "loading" for c in self.configs.values())

"""Drive a scheduling policy with a fake clock: arrivals, loads and generations take the times the
trace says, and every decision is the policy's own (the same `decide` the server runs).

A `divert` function may send an arrival elsewhere (a remote model) instead of the queue: it is
asked at the moment of arrival, with the policy's state then, and says how long the remote
answer takes. Used by `localforge bench scheduler --simulate`, `localforge bench overflow` and
by the property tests.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localforge.errors import LocalForgeError
from localforge.resources.placement import Shape
from localforge.schedule.core import Core, LoadAction, StartAction, Ticket, UnloadAction


@dataclass(slots=True, frozen=True)
class SimModel:
    name: str
    footprint: int | Shape  # bytes (all in RAM), or the parts a placement splits
    load_s: float  # seconds to read it into RAM
    vram_load_s_per_gb: float = 0.0  # and to copy each GB of its placement into VRAM

    def load_s_at(self, gpu_layers: int) -> float:
        if isinstance(self.footprint, int):
            return self.load_s
        return self.load_s + self.footprint.memory(gpu_layers).vram / 1e9 * self.vram_load_s_per_gb


@dataclass(slots=True, frozen=True)
class Arrival:
    at: float
    model: str
    service_s: float  # with every layer on the GPU: a partial placement takes longer
    keep_alive_s: float | None = None
    priority: str = "normal"  # high | normal | low, as a request's API key or header says
    sensitive: bool = False  # the sensitivity profiler would flag its prompt


@dataclass(slots=True)
class SimRequest:
    arrival: Arrival
    started: float | None = None
    finished: float | None = None
    error: str = ""
    remote: bool = False  # a `divert` sent it to a remote model

    @property
    def latency_s(self) -> float:
        """From arrival to the whole answer."""
        return (self.finished if self.finished is not None else math.nan) - self.arrival.at

    @property
    def wait_s(self) -> float:
        return (self.started if self.started is not None else math.nan) - self.arrival.at


@dataclass(slots=True)
class Run:
    outcomes: list[SimRequest]
    loads: int = 0
    evictions: int = 0
    peak_bytes: int = 0
    peak_vram: int = 0
    placements: dict[str, list[int]] = field(default_factory=dict)  # model -> gpu_layers of each load
    end: float = 0.0
    log: list[tuple[float, str, str]] = field(default_factory=list)

    @property
    def served(self) -> list[SimRequest]:
        return [o for o in self.outcomes if o.finished is not None]


# an arrival, the policy and the time -> seconds a remote model takes to answer it, or None: queue
Divert = Callable[[Arrival, Core, float], float | None]


def simulate(policy: Core, models: dict[str, SimModel], trace: list[Arrival],
             unload_s: float = 0.0, max_steps: int = 1_000_000, divert: Divert | None = None) -> Run:
    """Replay `trace` through `policy`; every request ends served or with an error."""
    for model in models.values():
        policy.register(model.name, model.name, model.footprint, model.load_s)
    run = Run([SimRequest(a) for a in trace])
    seq = itertools.count()
    events: list[tuple[float, int, str, Any]] = []
    for index, arrival in enumerate(trace):
        heapq.heappush(events, (arrival.at, next(seq), "arrive", index))
    now = 0.0
    for _ in range(max_steps):
        wake = policy.next_wake(now)
        when = min(events[0][0] if events else math.inf, wake)
        if when == math.inf or (not events and all(o.finished or o.error for o in run.outcomes)):
            break
        now = max(now, when)
        while events and events[0][0] <= now:
            _, _, kind, data = heapq.heappop(events)
            if kind == "arrive" and divert is not None \
                    and (remote_s := divert(run.outcomes[data].arrival, policy, now)) is not None:
                run.outcomes[data].started, run.outcomes[data].remote = now, True
                heapq.heappush(events, (now + remote_s, next(seq), "answered", data))
                continue
            _apply(policy, models, run, kind, data, now)
        for action in policy.decide(now):
            if isinstance(action, StartAction):
                config = policy.config(action.key)
                for ticket_id in action.tickets:
                    outcome = run.outcomes[ticket_id]
                    outcome.started = now
                    slowdown = config.shape.slowdown(config.gpu_layers, policy.cpu_speed)
                    heapq.heappush(events, (now + outcome.arrival.service_s * slowdown, next(seq),
                                            "finish", ticket_id))
            elif isinstance(action, LoadAction):
                run.loads += 1
                run.placements.setdefault(action.key, []).append(action.gpu_layers)
                heapq.heappush(events, (now + models[action.key].load_s_at(action.gpu_layers),
                                        next(seq), "loaded", (action.key, action.gpu_layers)))
            elif isinstance(action, UnloadAction):
                run.evictions += action.reason == "evict"
                heapq.heappush(events, (now + unload_s, next(seq), "unloaded", action.key))
            run.log.append((now, type(action).__name__, action.key))
        run.peak_bytes = max(run.peak_bytes, policy.used.total)
        run.peak_vram = max(run.peak_vram, policy.used.vram)
    run.end = now
    return run


def _apply(policy: Core, models: dict[str, SimModel], run: Run, kind: str, data: Any,
           now: float) -> None:
    if kind == "arrive":
        arrival = run.outcomes[data].arrival
        try:
            policy.submit(Ticket(data, arrival.model, now, arrival.keep_alive_s))
        except LocalForgeError as exc:
            run.outcomes[data].error = exc.message
    elif kind == "finish":
        policy.finish(data, now)
        run.outcomes[data].finished = now
    elif kind == "answered":  # by a remote model
        run.outcomes[data].finished = now
    elif kind == "loaded":
        key, gpu_layers = data
        policy.loaded(key, now, None, models[key].load_s_at(gpu_layers))
    elif kind == "unloaded":
        policy.unloaded(data)

"""Two scheduling policies over the same state: Ollama's FIFO and LocalForge's queue-per-model.

`Fifo` serves one global queue in arrival order: the oldest request's model is loaded on demand
(evicting the least recently used idle model), and that request blocks everyone behind it, as
Ollama's single `processPending` loop does. Two clients on two models that do not fit together
make it reload on almost every request. With partial offload it places as Ollama does: it evicts
idle models until the new one fits wholly on the GPU, and offloads it partly only when nothing
else is left to evict.

`Forge` keeps serving a resident model while it has queued work (in batches of `parallel`) and
swaps only when that model has nothing left to do, or when a waiting request would otherwise
break the starvation bound. The bound is enforced ahead of time: the requests at the heads of the
waiting queues are lined up in arrival order, and as soon as the time to drain, unload and load
them one after another would bring any of them to `starvation_s`, the oldest one's model is swapped
in. A freshly loaded model with queued work keeps the GPU for `min_resident_s` (and at least as
long as its own load took) so that the swaps forced by starvation cannot degenerate into one load
per request when the server is overloaded.

An idle resident model is not evicted the instant another model has work: it lingers for
`load_s / waiting` seconds (ski rental: wait as long as a reload would cost the waiting requests),
because a client that sends requests back to back leaves its queue empty for a moment between
them.

Placement is chosen by expected time. Loading a model beside the others with only the layers that
fit on the GPU costs its work the slowdown of partial offload; evicting idle models first gives it
more layers but costs each of them a reload. `Forge` weighs every prefix of the eviction order
(least recently used first) and takes the cheapest: `Σ victims' load_s + work × slowdown(g)`.
"""

from __future__ import annotations

import math

from localforge.schedule.core import Action, Configuration, Core

HORIZON_S = 600.0  # how far ahead a placement's slowdown is counted
SAFETY = 1.25  # estimates are means; aim the starvation trigger early by this factor


class Fifo(Core):
    name = "fifo"

    def plan(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while True:
            waiting = [c for c in self.configs.values() if c.queue]
            if not waiting:
                return actions
            head = min(waiting, key=self.waiting_since)
            if head.state == "ready" and head.in_flight < head.parallel:
                started = self.start(head, now, limit=1)
                if started:
                    actions.append(started)
                continue
            if head.state == "absent" and not self.loading():
                actions += self._bring_in(head)
            return actions

    def _bring_in(self, head: Configuration) -> list[Action]:
        """Ollama's rule: load it if it fits wholly on the GPU, or if nothing else is loaded (then
        partly offloaded); else evict idle models, least recently used first, and wait for busy
        ones to go idle."""
        others = [c for c in self.configs.values() if c.holds_memory and c is not head]
        g = self.placement(head, self.free())
        whole = head.shape.max_layers if self.gpu else 0
        if g is not None and (g == whole or not others):
            return [self.begin_load(head, g)]
        if any(c.state == "unloading" for c in others):
            return []  # wait for the memory on its way back
        idle = sorted((c for c in others if c.idle), key=lambda c: c.last_used)
        enough = next((count for count, g in self.placements_after(head, idle) if g == whole), None)
        return [self.begin_unload(v) for v in (idle if enough is None else idle[:enough])]


class Forge(Core):
    name = "localforge"

    def plan(self, now: float) -> list[Action]:
        actions: list[Action] = []
        draining: set[str] = set()
        if not self.loading():
            target, urgent = self._target(now)
            if target is not None:
                victims, g = self._bring_in(target, now, urgent)
                if g is not None:
                    actions.append(self.begin_load(target, g))
                elif victims and all(v.in_flight == 0 for v in victims):
                    actions += [self.begin_unload(v) for v in victims]
                elif victims:
                    draining = {v.key for v in victims}
        for config in sorted(self.configs.values(), key=self.waiting_since):
            if config.state == "ready" and config.queue and config.key not in draining:
                started = self.start(config, now)
                if started:
                    actions.append(started)
        return actions

    # which waiting model to bring in, and whether the starvation bound forces it now
    def _waiting(self) -> list[Configuration]:
        return sorted((c for c in self.configs.values() if c.queue and c.state == "absent"),
                      key=self.waiting_since)

    def _occupancy(self, config: Configuration, now: float) -> float:
        """How long a configuration keeps the GPU once its head request has started."""
        held = config.expected_service_s
        if len(config.queue) > config.parallel:
            held = max(held, self.resident_floor(config))
        return held

    def resident_floor(self, config: Configuration) -> float:
        """A model with queued work keeps the GPU at least this long after loading: the bound,
        or as long as its load took, so that forced swaps spend at most half the time loading."""
        return max(self.min_resident_s, config.load_s)

    def _drain_s(self, now: float) -> float:
        """Time until the models holding the memory could give it up."""
        drain = 0.0
        for config in self.configs.values():
            if config.state not in ("ready", "loading"):
                continue
            if config.state == "loading":
                drain = max(drain, config.load_s)
            for ticket in self._started(config):
                drain = max(drain, (ticket.started or now) + config.expected_service_s - now)
            if config.queue and config.state == "ready":
                drain = max(drain, config.loaded_at + self.resident_floor(config) - now)
        return max(0.0, drain)

    def _started(self, config: Configuration) -> list:  # type: ignore[type-arg]
        return [t for t in self._tickets.values() if t.key == config.key and t.started is not None]

    def _trigger_at(self, now: float) -> float:
        """The moment the oldest waiting model must be swapped in to keep every head in bound."""
        elapsed = self._drain_s(now)
        trigger = math.inf
        for config in self._waiting():
            elapsed += config.load_s
            trigger = min(trigger, self.waiting_since(config) + self.starvation_s
                          - SAFETY * elapsed - 0.05)
            elapsed += self._occupancy(config, now)
        return trigger

    def _target(self, now: float) -> tuple[Configuration | None, bool]:
        waiting = self._waiting()
        if not waiting:
            return None, False
        if self._trigger_at(now) <= now:
            return waiting[0], True
        busiest = max(waiting, key=lambda c: (len(c.queue), -self.waiting_since(c)))
        if busiest is not waiting[0] and self._detour_breaks_bound(busiest, waiting[0], now):
            return waiting[0], False
        return busiest, False

    def _detour_breaks_bound(self, busiest: Configuration, oldest: Configuration, now: float) -> bool:
        """Would bringing in `busiest` first (its load, then at least its resident floor, since
        a model with work is protected that long) leave `oldest` no time for its own load?"""
        detour = (self._drain_s(now) + busiest.load_s
                  + max(self._occupancy(busiest, now), self.resident_floor(busiest)) + oldest.load_s)
        return now + SAFETY * detour + 0.05 > self.waiting_since(oldest) + self.starvation_s

    def _releasable(self, config: Configuration, target: Configuration, now: float) -> bool:
        """May an idle model with no queue give way to `target` without urgency? (ski rental)"""
        linger = config.load_s / max(1, len(target.queue))
        # the same sum as the wake-up time in `wake_times`, with slack for rounding: woken at
        # exactly that moment, `now - last_used` can come out a hair short and the swap never happens
        return now + 1e-9 >= config.last_used + linger

    def _bring_in(self, target: Configuration, now: float, urgent: bool) -> tuple[list[Configuration], int | None]:
        """(models to evict, None) or ([], the placement to load `target` with now), by expected
        time; ([], None) to wait."""
        candidates = self._candidates(target, now, urgent)
        best: tuple[float, int, int] | None = None  # (expected seconds, victims, layers)
        for count, g in self.placements_after(target, candidates):
            if g is None:
                continue
            cost = (sum(c.load_s for c in candidates[:count])
                    + self._work(target) * target.shape.slowdown(g, self.cpu_speed))
            if best is None or cost < best[0] - 1e-9:
                best = (cost, count, g)
        if best is None:
            return [], None
        _, count, g = best
        if count:
            return candidates[:count], None
        if self.placement(target, self.free()) != g:
            return [], None  # the memory for this placement is on its way back
        return [], g

    def _work(self, target: Configuration) -> float:
        """Seconds of generation a load of `target` is expected to serve (at full GPU speed): its
        queue, and the requests its demand brings while it stays (a keep-alive's worth)."""
        coming = min(self.default_keep_alive_s, HORIZON_S) / max(target.mean_gap_s, 1e-3)
        return target.service_s * (len(target.queue) + max(1.0, coming))

    def _candidates(self, target: Configuration, now: float, urgent: bool) -> list[Configuration]:
        """Resident models that may be evicted for `target`, in the order to evict them: least
        recently used first; only idle ones past their linger time unless the bound is at stake."""
        ready = [c for c in self.configs.values() if c.state == "ready" and c is not target]
        if urgent:
            protected = {c.key for c in ready
                         if c.queue and now - c.loaded_at < self.resident_floor(c)}
            return sorted((c for c in ready if c.key not in protected),
                          key=lambda c: (bool(c.queue), c.in_flight > 0, c.last_used))
        return sorted((c for c in ready if c.idle and not c.queue and self._releasable(c, target, now)),
                      key=lambda c: c.last_used)

    def wake_times(self, now: float) -> list[float]:
        times = super().wake_times(now)
        waiting = self._waiting()
        if waiting:
            times.append(self._trigger_at(now))
            for config in self.configs.values():
                if config.idle and not config.queue:
                    times.append(config.last_used + config.load_s / max(1, len(waiting[0].queue)))
                if config.queue and config.state == "ready":
                    times.append(config.loaded_at + self.resident_floor(config))
        return times


POLICIES: dict[str, type[Core]] = {"fifo": Fifo, "localforge": Forge}

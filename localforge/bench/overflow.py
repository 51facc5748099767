"""`localforge bench overflow`: local first under a burst, against everything queueing locally
(Ollama) and everything going remote.

A seeded trace on the simulated clock: a quiet period, a burst of several times one local
model's capacity, quiet again. Each request has a priority (high, normal, low) and some carry
private data. One local model (an 8B on a gaming PC: two slots, ~6 s an answer) serves through
the real scheduling policy (`schedule.policy.Forge`, the same `decide` the server runs); the
remote model answers in its own time at its price. Three policies:

- `local_only`: every request queues for the local model, as with Ollama;
- `remote_first`: every request goes to the remote model;
- `localforge`: at each arrival, the local model's expected wait as the server computes it
  (`Core.expected_wait_s`) goes through the server's own overflow rule
  (`route.overflow.settle`) against the preset's latency budget, after the router's own
  policies (`route.policies.apply`: private data stays local, the daily spending cap).

For each policy it prints and (`--json`) writes `requests`, `p50_s` and `p95_s` (arrival to the
whole answer), `max_wait_s` (before a slot or the remote call), `remote_share`, `cost_usd` and
`sensitive_remote` (requests with private data that reached the remote model). `--plot` draws the
local queue and the share sent remote over time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localforge.bench.scheduler import GB, layered, percentile
from localforge.config.router import RouterSettings
from localforge.profile.base import Profile
from localforge.resources.placement import Pools
from localforge.route import overflow, policies
from localforge.route.decision import Candidate, Decision, Scored
from localforge.route.facts import RoutingFacts
from localforge.schedule.core import Core
from localforge.schedule.policy import Forge
from localforge.schedule.simulate import Arrival, SimModel, SimRequest, simulate

LOCAL, REMOTE = "llama3.1:8b", "gpt-4o"
POLICIES = ("local_only", "remote_first", "localforge")


@dataclass(slots=True, frozen=True)
class Setup:
    """The machine, the models and the trace; every field is a flag of the command."""

    seed: int = 1
    quiet_s: float = 600.0  # each quiet period
    burst_s: float = 120.0
    quiet_load: float = 0.5  # arrivals as a share of the local model's capacity
    burst_load: float = 4.0
    service_s: float = 6.0  # mean local answer (256 tokens at ~40 tokens/s); each is 0.5-1.5x
    parallel: int = 2  # local slots
    load_s: float = 10.0  # local model load
    remote_s: float = 3.7  # a remote answer: 0.5 s away, 256 tokens at 80 tokens/s
    input_tokens: int = 500
    output_tokens: int = 256
    input_price: float = 2.5  # remote, $ per million tokens
    output_price: float = 10.0
    budget_s: float = 20.0  # the preset's latency budget (balanced's default)
    daily_budget: float | None = None  # the server's cap on remote spend, $
    sensitive: float = 0.1  # share of requests with private data
    high: float = 0.15  # share of each priority; the rest are normal
    low: float = 0.15

    @property
    def capacity(self) -> float:
        """Local answers per second."""
        return self.parallel / self.service_s

    @property
    def remote_cost(self) -> float:
        return (self.input_price * self.input_tokens + self.output_price * self.output_tokens) / 1e6


def make_trace(s: Setup) -> list[Arrival]:
    """Poisson arrivals at `quiet_load`, `burst_load`, `quiet_load` times the local capacity."""
    rng = random.Random(s.seed)
    trace: list[Arrival] = []
    start = 0.0
    for length, load in ((s.quiet_s, s.quiet_load), (s.burst_s, s.burst_load), (s.quiet_s, s.quiet_load)):
        at = start
        while (at := at + rng.expovariate(load * s.capacity)) < start + length:
            draw = rng.random()
            level = "high" if draw < s.high else "low" if draw < s.high + s.low else "normal"
            trace.append(Arrival(round(at, 3), LOCAL, s.service_s * rng.uniform(0.5, 1.5),
                                 priority=level, sensitive=rng.random() < s.sensitive))
        start += length
    return trace


@dataclass(slots=True)
class Dispatcher:
    """Where each policy sends an arrival: for localforge, the server's overflow decision with the
    simulated queue's wait; it keeps the local queue and the choice at each arrival."""

    setup: Setup
    spent: float = 0.0
    samples: list[tuple[float, int, bool]] = field(default_factory=list)  # (time, queued, remote)

    def candidates(self) -> list[Candidate]:
        s = self.setup
        return [Candidate(LOCAL, RoutingFacts(LOCAL), entry=LOCAL),
                Candidate(REMOTE, RoutingFacts(REMOTE, locality="remote", input_price=s.input_price,
                                               output_price=s.output_price))]

    def localforge(self, arrival: Arrival, policy: Core, now: float) -> float | None:
        s = self.setup
        config = policy.config(arrival.model)
        wait = policy.expected_wait_s(config)
        scored = [Scored(LOCAL, 0.0, {"wait_s": wait, "service_s": config.expected_service_s}),
                  Scored(REMOTE, 0.0, {"wait_s": 0.0, "service_s": s.remote_s})]
        # the server's policies, as for a request with this arrival's profile: private data and
        # the daily cap remove the remote model
        profile = Profile(text="", tokens=s.input_tokens, sensitive=arrival.sensitive)
        spending = policies.Spending(self.spent, {REMOTE: s.remote_cost})
        kept, removed = policies.apply(profile, self.candidates(), RouterSettings(daily_budget=s.daily_budget),
                                       spending)
        # local first: the router's choice is the local model, good enough for these requests
        decision = Decision("", "balanced", LOCAL, [x for x in scored if x.model not in removed], removed)
        settled = overflow.settle(decision, kept, s.budget_s, overflow.priority(arrival.priority), arrival.sensitive)
        return self._sample(now, policy, settled.chosen == REMOTE)

    def local_only(self, arrival: Arrival, policy: Core, now: float) -> float | None:
        return self._sample(now, policy, False)

    def remote_first(self, arrival: Arrival, policy: Core, now: float) -> float | None:
        return self._sample(now, policy, True)

    def _sample(self, now: float, policy: Core, remote: bool) -> float | None:
        self.samples.append((now, policy.queued, remote))
        if remote:
            self.spent += self.setup.remote_cost
            return self.setup.remote_s
        return None


def figures(outcomes: list[SimRequest], setup: Setup) -> dict[str, Any]:
    served = [o for o in outcomes if o.finished is not None]
    latencies = [o.latency_s for o in served]
    remote = [o for o in outcomes if o.remote]
    return {"requests": len(outcomes), "served": len(served),
            "p50_s": round(percentile(latencies, 0.5, math.nan), 2),
            "p95_s": round(percentile(latencies, 0.95, math.nan), 2),
            "max_wait_s": round(max((o.wait_s for o in served), default=0.0), 2),
            "remote_share": round(len(remote) / max(1, len(outcomes)), 4),
            "cost_usd": round(len(remote) * setup.remote_cost, 4),
            "sensitive_remote": sum(1 for o in remote if o.arrival.sensitive),
            "by_priority_p95_s": {level: round(percentile(
                [o.latency_s for o in served if o.arrival.priority == level], 0.95, math.nan), 2)
                for level in overflow.PRIORITIES},
            "sensitive_p95_s": round(percentile(
                [o.latency_s for o in served if o.arrival.sensitive], 0.95, math.nan), 2)}


def run(setup: Setup) -> tuple[dict[str, dict[str, Any]], dict[str, list[tuple[float, int, bool]]]]:
    """Every policy over the same trace: its figures, and its (time, local queue, remote) samples."""
    trace = make_trace(setup)
    model = SimModel(LOCAL, layered(LOCAL, 5.0), load_s=setup.load_s)
    results, samples = {}, {}
    for name in POLICIES:
        dispatcher = Dispatcher(setup)
        policy = Forge(Pools(12 * GB, 32 * GB), parallel=setup.parallel)
        done = simulate(policy, {LOCAL: model}, trace, divert=getattr(dispatcher, name))
        results[name] = figures(done.outcomes, setup)
        samples[name] = dispatcher.samples
    return results, samples


def report(results: dict[str, dict[str, Any]], setup: Setup, n_burst: int) -> str:
    keys = ["requests", "p50_s", "p95_s", "max_wait_s", "remote_share", "cost_usd", "sensitive_remote"]
    lines = [f"local capacity {setup.capacity * 60:.0f} requests/min; burst {setup.burst_load:g}x for "
             f"{setup.burst_s:g} s ({n_burst} requests) between {setup.quiet_s:g} s at {setup.quiet_load:g}x; "
             f"latency budget {setup.budget_s:g} s",
             f"{'':<14}" + "".join(f"{k:>17}" for k in keys)]
    for name, row in results.items():
        lines.append(f"{name:<14}" + "".join(f"{row[k]:>17g}" for k in keys))
    ours, local = results["localforge"], results["local_only"]
    lines.append(f"localforge p95 {ours['p95_s']:g} s = {ours['p95_s'] / local['p95_s']:.2f}x local_only's "
                 f"(goal <= 0.5); remote {100 * ours['remote_share']:.1f}% (goal <= 35%); "
                 f"sensitive remote {ours['sensitive_remote']} (goal 0)")
    lines.append("localforge p95 by priority: " + ", ".join(
        f"{k} {v:g} s" for k, v in ours["by_priority_p95_s"].items()) + f"; private {ours['sensitive_p95_s']:g} s")
    return "\n".join(lines)


def plot(samples: dict[str, list[tuple[float, int, bool]]], setup: Setup, path: Path) -> None:
    """The local queue over time for each policy, and the share localforge sent remote."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (queue, share) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for name in ("local_only", "localforge"):
        points = samples[name]
        queue.plot([t / 60 for t, _, _ in points], [q for _, q, _ in points], label=name, linewidth=1.2)
    queue.set_ylabel("requests queued for the local model")
    queue.legend(loc="upper right")
    bucket = 30.0
    counts: dict[int, list[int]] = {}
    for t, _, remote in samples["localforge"]:
        counts.setdefault(int(t // bucket), [0, 0])[remote] += 1
    keys = sorted(counts)
    share.bar([(k + 0.5) * bucket / 60 for k in keys], [counts[k][1] / sum(counts[k]) for k in keys],
              width=bucket / 60 * 0.9, color="tab:orange", label="localforge: share sent remote")
    share.set_ylim(0, 1)
    share.set_ylabel("share sent remote")
    share.set_xlabel("minutes")
    share.legend(loc="upper right")
    for ax in (queue, share):
        ax.axvspan(setup.quiet_s / 60, (setup.quiet_s + setup.burst_s) / 60, color="grey", alpha=0.15)
        ax.grid(alpha=0.3)
    queue.set_title(f"A burst of {setup.burst_load:g}x one local model's capacity (shaded)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_parser(bench: Any) -> None:
    p = bench.add_parser("overflow", help="local first under a burst: local_only, remote_first, localforge",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--plot", type=Path, help="draw the queue and the remote share over time (PNG)")
    for name, default in Setup.__dataclass_fields__.items():
        value = default.default
        kind = float if isinstance(value, float) or value is None else int
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    setup = Setup(**{name: getattr(args, name) for name in Setup.__dataclass_fields__})
    results, samples = run(setup)
    n_burst = sum(1 for a in make_trace(setup) if setup.quiet_s <= a.at < setup.quiet_s + setup.burst_s)
    print(report(results, setup, n_burst))
    if args.json:
        args.json.write_text(json.dumps({"setup": dataclasses.asdict(setup), **results}, indent=2))
    if args.plot:
        plot(samples, setup, args.plot)
        print(f"plot: {args.plot}")
    return 0

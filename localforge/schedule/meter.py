"""What the scheduler and the pipeline count, for GET /metrics (rendered in server/metrics.py)."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localforge.inference import RunnerCost

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(slots=True)
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        index = bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        running, out = 0, []
        for bound, n in zip(self.buckets, self.counts or [0] * len(self.buckets), strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass(slots=True)
class Meter:
    loads: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    load_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    evictions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    crashes: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # runners that died
    rejected: int = 0
    canceled: int = 0
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    tokens: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    eval_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    wait: dict[str, Histogram] = field(default_factory=dict)
    # runner processes' decode steps: how many, their time, and the part in llama_decode
    steps: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    step_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    decode_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency: dict[str, Histogram] = field(default_factory=dict)

    def waited(self, model: str, seconds: float) -> None:
        self.wait.setdefault(model, Histogram(WAIT_BUCKETS)).observe(seconds)

    def ran(self, model: str, cost: RunnerCost | None) -> None:
        """A runner's steps since its previous answer ended (one that served `model`)."""
        if cost is not None and cost.steps:
            self.steps[model] += cost.steps
            self.step_seconds[model] += cost.step_ns / 1e9
            self.decode_seconds[model] += cost.decode_ns / 1e9

    def served(self, model: str, latency_s: float, tokens: int, eval_s: float) -> None:
        """A request finished on `model` (the one the router chose)."""
        self.requests[model] += 1
        self.latency.setdefault(model, Histogram(LATENCY_BUCKETS)).observe(latency_s)
        self.tokens[model] += tokens
        self.eval_seconds[model] += eval_s

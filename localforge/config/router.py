"""The router's settings: the `[router]` section of the config file.

```toml
[router]
default_model = "smollm2:135m"      # served when the router has too little evidence
exploration = 0.01                  # floor of the exploration probability

[router.presets.cheap]              # auto:cheap; more presets may be added
cost_weight = 2000.0
latency_budget_s = 90               # wait this long for a busy local model, then go remote

[router.models."gpt-4-1106-preview"]
locality = "remote"
input_price = 10.0                  # $ per million input tokens
output_price = 30.0
quality = { general = 0.8, coding = 0.85 }
```
"""

from __future__ import annotations

import msgspec

TASKS = ("coding", "math", "reasoning", "instruction", "hard_reasoning", "general")


class ModelFacts(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the router knows about one model beyond its card; unset fields come from the card."""

    locality: str | None = None  # "local" or "remote"
    input_price: float = 0.0  # dollars per million input tokens
    output_price: float = 0.0  # dollars per million output tokens
    energy_price: float = 0.0  # dollars per million tokens a local model burns in electricity
    context_length: int | None = None
    capabilities: list[str] | None = None  # "tools", "vision", "embedding", "structured", …
    size: int | None = None  # bytes in memory
    load_s: float | None = None  # seconds to load when not resident
    tokens_per_s: float | None = None  # generation speed, for the latency term
    quality: dict[str, float] = {}  # per-task prior of the share of good answers, 0..1


class Preset(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A point on the dial: how many quality points one dollar and one second are worth, and how
    long a request may wait for a busy local model before it overflows to a remote one."""

    cost_weight: float = 0.0  # quality lost per dollar of expected cost
    latency_weight: float = 0.0  # quality lost per second of expected latency
    # seconds of expected wait for a local model's slot past which a request goes remote
    # (route/overflow.py); inf: never overflow
    latency_budget_s: float = 20.0


def default_presets() -> dict[str, Preset]:
    # A typical remote call costs about $0.005-0.01, a local one close to nothing: "cheap" pays
    # for the remote model only when it is expected to answer much better, "best" nearly always.
    return {
        "cheap": Preset(cost_weight=40.0, latency_weight=0.01, latency_budget_s=60.0),
        "balanced": Preset(cost_weight=12.0, latency_weight=0.005, latency_budget_s=20.0),
        "best": Preset(cost_weight=0.0, latency_weight=0.0, latency_budget_s=10.0),
    }


class RouterSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    default_model: str = ""  # fallback when no candidate's estimate is confident enough
    default_preset: str = "balanced"
    presets: dict[str, Preset] = msgspec.field(default_factory=default_presets)
    models: dict[str, ModelFacts] = {}
    # exploration: a probability that starts at `exploration_start` and decays towards the floor
    # `exploration` as outcomes accumulate (half-way after `exploration_halflife` outcomes)
    exploration: float = 0.01
    exploration_start: float = 0.5
    exploration_halflife: int = 200
    # an early period of this many outcomes held at `exploration_start` before the decay begins:
    # a new deployment spends it learning every model's strengths on its own traffic, where
    # exploring at 1.0 gives each model an even, unbiased sample (0 = decay from the first call)
    exploration_warmup: int = 0
    # Thompson sampling: each decision draws the candidates' qualities from their posteriors,
    # their spread times this (0 = no posterior draws; ε-greedy alone explores)
    thompson_scale: float = 0.2
    confidence_floor: float = 0.0  # evidence (effective outcomes) below which default_model serves
    neighbours: int = 40  # k of the k-NN memory
    memory_pseudocount: float = 30.0  # weighted neighbours it takes to outweigh the bandit's estimate
    similarity_power: float = 1.0  # >1 sharpens cosine similarities: near neighbours count more
    ridge: float = 10.0  # the bandit's penalty (prior precision); larger trusts the priors longer
    decay_per_day: float = 0.95  # weight of an outcome one day old, relative to a fresh one
    expected_output_tokens: int = 256
    # prefer a model already in memory over a better one that must be loaded first, when its
    # expected quality is within this margin of the best (a swap costs 30-60 s on a gaming PC)
    stickiness: float = 0.03
    # prompt text in the routes table (for your own analysis); a prompt the sensitivity profiler
    # flags is never stored, whatever this says. Off: hashes and embeddings only
    store_prompts: bool = False
    # routes, their outcomes and their vectors older than this are deleted (0 or unset: kept)
    retention_days: float | None = 30.0
    private_stays_local: bool = True
    remote: bool = True
    daily_budget: float | None = None  # dollars per day on remote models; None = no cap
    seed: int | None = None  # seeds the exploration draws (tests and benchmarks)

    def __post_init__(self) -> None:
        # a config that defines one preset keeps the built-in others
        self.presets = {**default_presets(), **self.presets}

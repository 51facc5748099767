"""What the router weighs about each model (`RoutingFacts`): where it runs, what it costs, how
much it holds, what it can do and how good it is expected to be per task. They come from the
model's card, overridden by the `[router.models."name"]` section of the config, with defaults for
the demo models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localforge.backends.base import ModelCard
from localforge.config.router import TASKS, ModelFacts

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

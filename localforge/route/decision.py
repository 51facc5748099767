"""What the router decided and why: every candidate's score broken into its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localforge.route.facts import RoutingFacts


@dataclass(slots=True)
class Candidate:
    """A model the policies let through, with the facts the scorers read."""

    model: str
    facts: RoutingFacts
    entry: Any = None  # the registry Entry in the server; None in the replay


@dataclass(slots=True)
class Scored:
    model: str
    score: float
    # quality = prior + linear + memory corrections; then cost and latency terms, scorer terms
    parts: dict[str, float] = field(default_factory=dict)
    evidence: float = 0.0  # outcomes of similar requests behind the estimate (similarity-weighted)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "score": round(self.score, 6), "evidence": round(self.evidence, 3),
                "parts": {k: round(v, 6) for k, v in self.parts.items()},
                "cost": self.parts.get("cost", 0.0)}


@dataclass(slots=True)
class Decision:
    request_id: str
    preset: str
    chosen: str
    scored: list[Scored]  # best first
    removed: dict[str, str] = field(default_factory=dict)  # model -> the policy that removed it
    exploration: float = 0.0  # the probability of exploring at this decision
    explored: bool = False
    propensity: float = 1.0  # the probability that this policy chose `chosen`, for off-policy use
    reason: str = ""
    overflow: bool = False  # sent remote because the chosen local model's queue was too long

    @property
    def order(self) -> list[str]:
        """The chosen model first, then the others best first: the fallback order."""
        return [self.chosen, *(s.model for s in self.scored if s.model != self.chosen)]

    def as_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "preset": self.preset, "model": self.chosen,
                "reason": self.reason, "overflow": self.overflow, "explored": self.explored,
                "exploration": round(self.exploration, 6), "propensity": round(self.propensity, 6),
                "candidates": [s.as_dict() for s in self.scored], "removed": dict(self.removed)}

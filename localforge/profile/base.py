"""What profilers, embedders and scorers are: the objects plugins register through the hooks.

A profile is built once per request by running every registered Profiler in turn; each adds its
fields. Scorers read the profile and a candidate model and add one named term to its score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from localforge.backends.base import ModelCard
    from localforge.inference import Inference


@dataclass(slots=True)
class Profile:
    text: str = ""  # the text the profilers read (last user turn plus system), never stored when
    # store_prompts is off
    tokens: int = 0
    task: str = "general"
    task_probabilities: dict[str, float] = field(default_factory=dict)
    sensitive: bool = False
    sensitivity: list[str] = field(default_factory=list)  # what was found: "email", "card", ...
    embedding: np.ndarray | None = None
    features: dict[str, Any] = field(default_factory=dict)  # turns, code blocks, tools, images, …
    timings_ns: dict[str, int] = field(default_factory=dict)  # what each profiler took


@runtime_checkable
class Profiler(Protocol):
    name: str

    def profile(self, request: Inference, profile: Profile) -> None:
        """Add this profiler's fields to `profile` (called in registration order)."""


@runtime_checkable
class Embedder(Protocol):
    name: str
    dimensions: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, profile: Profile, card: ModelCard) -> float:
        """This scorer's term for one candidate; positive is better."""

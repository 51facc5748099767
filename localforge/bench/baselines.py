"""What `bench replay` prints beside `auto`: the routers that bound it and show where its gap is.

- the oracle knows every evaluated prompt's outcomes and sends to the strong model exactly the
  prompts only it answers (cheapest first): the top of what any router could reach;
- random routing sends a share of calls to the strong model at random: in expectation its PGR
  equals that share (APGR 0.5), whatever the data;
- the k-NN vote is the plain baseline of the design notes: a uniform 50/50 choice while it
  learns, then each model's similarity-weighted share of right answers among the k nearest
  earlier prompts whose outcome for that model was revealed, with bandit feedback throughout.

Each returns points (strong-call share, accuracy) that `metrics` scores like `auto`'s.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from localforge.bench import metrics

VOTE_NEIGHBOURS = 40


def oracle(outcomes: np.ndarray, costs: np.ndarray, strong: int, weak: int,
           steps: int = 50) -> list[metrics.Point]:
    """`outcomes` and `costs`: (prompts, models); points at `steps` shares of strong calls."""
    gain = outcomes[:, strong] - outcomes[:, weak]
    order = np.lexsort((costs[:, strong] - costs[:, weak], -gain))  # largest gain, then cheapest
    cumulative = np.concatenate([[0.0], np.cumsum(gain[order])])
    n = len(gain)
    base = float(outcomes[:, weak].mean())
    return [metrics.Point(k / n, base + cumulative[k] / n)
            for k in sorted({round(n * i / steps) for i in range(1, steps)})]


def random_routing(weak: float, strong: float, steps: int = 10) -> list[metrics.Point]:
    return [metrics.random_point(i / steps, weak, strong) for i in range(1, steps)]


class KnnVote:
    """The k-NN vote over one stream of prompts (learned ones first, then evaluated ones).

    `choose(i, cost_weight)` is the vote's choice for prompt i at one point of the dial, from the
    outcomes revealed before it; `reveal(i, model, outcome)` learns one outcome.
    """

    def __init__(self, vectors: np.ndarray, models: list[str], k: int = VOTE_NEIGHBOURS) -> None:
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.models = models
        self.k = k
        self.seen = np.zeros((len(vectors), len(models)), dtype=bool)
        self.scores = np.zeros((len(vectors), len(models)))
        self._known: list[int] = []  # prompts with any revealed outcome, in order

    def estimates(self, i: int) -> np.ndarray:
        """Each model's similarity-weighted share of right answers near prompt i, shrunk by one
        pseudo-outcome towards its mean over everything revealed."""
        known = np.asarray(self._known, dtype=np.intp)
        seen, scores = self.seen[known], self.scores[known]
        overall = (scores.sum(0) + 0.5) / (seen.sum(0) + 1.0)
        if len(known) == 0:
            return overall
        similarity = self.vectors[known] @ self.vectors[i]
        near = np.argpartition(-similarity, min(self.k, len(known) - 1))[:self.k]
        weights = np.clip(similarity[near], 0.0, None)[:, None] * seen[near]
        return ((weights * scores[near]).sum(0) + overall) / (weights.sum(0) + 1.0)

    def reveal(self, i: int, model: str, outcome: float) -> None:
        m = self.models.index(model)
        if not self.seen[i].any():
            self._known.append(i)
        self.seen[i, m] = True
        self.scores[i, m] = outcome


def knn_vote(vectors: np.ndarray, models: list[str], outcome: Callable[[int, str], float],
             cost: Callable[[int, str], float], learned: int, cost_weights: list[float],
             seed: int = 0) -> list[list[str]]:
    """The vote's choice for every evaluated prompt (after the first `learned`) at each cost
    weight; one dial point, drawn at random per prompt, serves it and has its outcome revealed."""
    vote = KnnVote(vectors, models)
    rng = random.Random(seed)
    chosen: list[list[str]] = [[] for _ in cost_weights]
    for i in range(len(vectors)):
        if i < learned:
            served = rng.choice(models)
        else:
            quality = vote.estimates(i)
            picks = [models[int(np.argmax([q - w * cost(i, m) for q, m in zip(quality, models,
                                                                                strict=True)]))]
                     for w in cost_weights]
            for column, pick in zip(chosen, picks, strict=True):
                column.append(pick)
            served = rng.choice(picks)
        vote.reveal(i, served, outcome(i, served))
    return chosen

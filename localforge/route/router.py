"""The learning router: expected quality − cost weight × cost − latency weight × latency.

Expected quality of a model for a request is built in three layers, each correcting the last:
1. the prior: the model's per-task quality, weighted by the task classifier's probabilities;
2. the bandit: a Bayesian logistic regression per model over the context vector, offset by the
   prior's logit, which generalises across requests (subjects, shapes, lengths);
3. the memory: outcomes of the k most similar past requests (one hnswlib search for all
   candidates), weighted by similarity and by exponential decay with age, shrunk towards layer 2
   by a pseudo-count, so a few neighbours nudge the estimate and many neighbours decide it.

The layers do not depend on the preset: `score` computes them once and `rank` weighs them for
a point of the dial, so what one decision teaches serves every preset.

Exploration targets uncertainty: each decision draws every candidate's quality from its
posterior (Thompson sampling, with the bandit posterior's spread narrowed by the memory's share),
so a model is tried about as often as it may be the best and hardly at all where the evidence
is clear. On top, ε-greedy picks uniformly with probability ε, held at `exploration_start` for
a warm-up of `exploration_warmup` outcomes and then decaying to the floor `exploration`. The
probability of the chosen model under both (its propensity) is logged with the decision so a
replay can evaluate other policies off-policy.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from localforge.backends.base import ModelCard
from localforge.config.router import Preset, RouterSettings
from localforge.errors import BadRequest
from localforge.memory.outcomes import SECONDS_PER_DAY, Memory, Route
from localforge.profile.base import Profile, Scorer
from localforge.route.bandit import LogisticBandit
from localforge.route.decision import Candidate, Decision, Scored
from localforge.route.features import EXTRA_DIMENSIONS, context_vector

log = logging.getLogger(__name__)

REMOTE_OVERHEAD_S = 0.5  # network and queueing at a remote provider
THOMPSON_DRAWS = 256  # posterior draws per decision: the first chooses, all give the propensity


class Readiness(Protocol):
    """How ready each model is, as the router asks the scheduler (localforge.schedule.scheduler.Scheduler
    answers)."""

    def is_resident(self, name: str) -> bool: ...

    def expected_load_s(self, card: Any) -> float: ...

    def expected_wait_s(self, name: str) -> float | None: ...


class Latency:
    """The answers where there is no scheduler, as in the replay: everything resident, no queue."""

    def is_resident(self, name: str) -> bool:
        return True

    def expected_load_s(self, card: Any) -> float:
        return 0.0

    def expected_wait_s(self, name: str) -> float | None:
        return 0.0


class Router:
    def __init__(self, settings: RouterSettings, memory: Memory, dimensions: int,
                 scorers: list[Scorer] | None = None, latency: Readiness | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.memory = memory
        self.dimensions = dimensions
        self.bandit = LogisticBandit(dimensions + EXTRA_DIMENSIONS, settings.ridge)
        self.scorers = scorers or []
        self.latency = latency or Latency()
        self.clock = clock
        self.rng = random.Random(settings.seed)
        self.draws = np.random.default_rng(settings.seed)
        self.outcomes_seen = 0
        self._lock = threading.Lock()  # bandit updates come from worker threads

    # -- the dial -------------------------------------------------------------------------------

    def preset(self, name: str | None) -> tuple[str, Preset]:
        key = name or self.settings.default_preset
        preset = self.settings.presets.get(key)
        if preset is None:
            known = ", ".join(sorted(self.settings.presets))
            raise BadRequest(f"unknown routing preset '{key}' (known: {known})")
        return key, preset

    def exploration(self) -> float:
        s = self.settings
        half = max(s.exploration_halflife, 1)
        start = min(max(s.exploration_start, s.exploration), 1.0)
        after_warmup = self.outcomes_seen - max(s.exploration_warmup, 0)
        if after_warmup < 0:
            return start
        return s.exploration + (start - s.exploration) * half / (half + after_warmup)

    # -- scoring --------------------------------------------------------------------------------

    def _memory(self, profile: Profile, models: list[str], scope: str = "") -> dict[str, tuple[float, float]]:
        """Per model: (similarity- and age-weighted sum of outcomes, sum of weights), over the
        neighbours of the request's own scope."""
        sums = {m: [0.0, 0.0] for m in models}
        if profile.embedding is None:
            return {m: (0.0, 0.0) for m in models}
        now = self.clock()
        decay = math.log(max(min(self.settings.decay_per_day, 1.0), 1e-6))
        for n in self.memory.neighbours(profile.embedding, self.settings.neighbours, scope):
            weight = max(n.similarity, 0.0) ** self.settings.similarity_power
            weight *= math.exp(decay * max(now - n.created_at, 0.0) / SECONDS_PER_DAY)
            for model, score in n.outcomes.items():
                if model in sums:
                    sums[model][0] += weight * score
                    sums[model][1] += weight
        return {m: (v[0], v[1]) for m, v in sums.items()}

    def expected_load(self, candidate: Candidate) -> float:
        """Seconds to load a local model that is not resident; 0 for one that is, or a remote one."""
        if candidate.facts.locality == "remote" or candidate.entry is None \
                or self.latency.is_resident(candidate.model):
            return 0.0
        return self.latency.expected_load_s(candidate.entry.card) or candidate.facts.load_s

    def expected_wait(self, candidate: Candidate) -> float:
        """Seconds before a local model starts on a request: the scheduler's expected wait for a
        slot (its queue over its slots at the measured service time, and a load when it is not
        ready), or a load when the scheduler has not seen it yet. A remote model: none."""
        if candidate.facts.locality == "remote" or candidate.entry is None:
            return 0.0
        wait = self.latency.expected_wait_s(candidate.model)
        return self.expected_load(candidate) if wait is None else wait

    @staticmethod
    def expected_service(candidate: Candidate, output_tokens: int) -> float:
        """Seconds to answer once started (a remote model's network and queue included)."""
        seconds = output_tokens / max(candidate.facts.tokens_per_s, 1e-3)
        return seconds + REMOTE_OVERHEAD_S if candidate.facts.locality == "remote" else seconds

    def score(self, profile: Profile, candidates: list[Candidate],
              context: np.ndarray, scope: str = "") -> list[Scored]:
        """Every candidate's parts that no preset changes: its quality (prior, linear and memory
        layers) and that quality's uncertainty, its cost, its latency and the scorers' terms.
        One call serves every point of the dial (`rank` weighs the parts for a preset)."""
        memory = self._memory(profile, [c.model for c in candidates], scope)
        output_tokens = int(profile.features.get("max_tokens") or self.settings.expected_output_tokens)
        pseudo = self.settings.memory_pseudocount
        scored = []
        for c in candidates:
            prior = c.facts.prior(profile.task_probabilities, profile.task)
            base = self.bandit.estimate(c.model, context, prior)
            total, weight = memory[c.model]
            quality = (total + pseudo * base) / (weight + pseudo)
            # the bandit's posterior spread, narrowed by the share of the estimate the neighbours decide
            spread = self.bandit.spread(c.model, context, base) * pseudo / (weight + pseudo)
            parts = {"prior": prior, "linear": base - prior, "memory": quality - base,
                     "quality": quality, "uncertainty": spread,
                     "cost": c.facts.cost(profile.tokens, output_tokens),
                     # the latency term weighs the answer and a load; the queue is the
                     # overflow rule's (route/overflow.py), against the preset's budget
                     "service_s": (service := self.expected_service(c, output_tokens)),
                     "wait_s": self.expected_wait(c),
                     "latency_s": service + self.expected_load(c)}
            if self.scorers:
                card = c.entry.card if c.entry is not None else ModelCard(
                    name=c.model, backend="", locality=c.facts.locality,  # type: ignore[arg-type]
                    capabilities=list(c.facts.capabilities), context_length=c.facts.context_length)
                for scorer in self.scorers:
                    parts[f"scorer:{scorer.name}"] = float(scorer.score(profile, card))
            scored.append(Scored(c.model, quality, parts, evidence=weight))
        return scored

    @staticmethod
    def rank(scored: list[Scored], preset: Preset) -> list[Scored]:
        """The candidates scored for one point of the dial, best first."""
        ranked = []
        for s in scored:
            parts = {**s.parts, "cost_term": -preset.cost_weight * s.parts["cost"],
                     "latency_term": -preset.latency_weight * s.parts["latency_s"]}
            value = parts["quality"] + parts["cost_term"] + parts["latency_term"] + sum(
                v for k, v in parts.items() if k.startswith("scorer:"))
            ranked.append(Scored(s.model, value, parts, s.evidence))
        ranked.sort(key=lambda s: s.score, reverse=True)
        return ranked

    # -- deciding and learning ------------------------------------------------------------------

    def decide(self, profile: Profile, candidates: list[Candidate], request_id: str,
               preset_name: str | None = None, removed: dict[str, str] | None = None,
               explore: bool = True, scope: str = "") -> tuple[Decision, np.ndarray]:
        """Score the candidates and choose one; returns the decision and its context vector."""
        context = context_vector(profile, self.dimensions)
        scored = self.score(profile, candidates, context, scope)
        return self.choose(scored, candidates, request_id, preset_name, removed, explore), context

    def choose(self, scored: list[Scored], candidates: list[Candidate], request_id: str,
               preset_name: str | None = None, removed: dict[str, str] | None = None,
               explore: bool = True) -> Decision:
        """One decision from `score`'s parts under a preset. Exploring, the router draws every
        candidate's quality from its posterior (Thompson sampling: a model is tried about as
        often as it may be the best) and, with probability ε, picks uniformly; the propensity
        of the choice under both is logged."""
        name, preset = self.preset(preset_name)
        ranked = self.rank(scored, preset)
        best = ranked[0]
        greedy, reason = self._greedy(name, best, ranked, candidates)
        scale = self.settings.thompson_scale if explore and len(ranked) > 1 else 0.0
        draws = self._thompson(ranked, scale, best.model, greedy) if scale > 0 else [greedy]
        chosen = draws[0]
        explored = chosen != greedy
        if explored:
            reason = f"posterior draw (p={draws.count(chosen) / len(draws):.3f})"
        epsilon = self.exploration() if explore and len(ranked) > 1 else 0.0
        if self.rng.random() < epsilon:
            chosen, explored = self.rng.choice(ranked).model, True
            reason = f"exploring (p={epsilon:.3f})"
        propensity = (1 - epsilon) * draws.count(chosen) / len(draws) + epsilon / len(ranked)
        return Decision(request_id, name, chosen, ranked, dict(removed or {}), epsilon,
                        explored, propensity, reason)

    def _thompson(self, ranked: list[Scored], scale: float, best: str, greedy: str) -> list[str]:
        """The winners of THOMPSON_DRAWS draws from the candidates' posteriors; the first is the
        choice, their shares its propensity. A draw won by the best-ranked model stands for the
        greedy choice (which may be a resident or default model in its place)."""
        means = np.array([s.score for s in ranked])
        spread = np.array([s.parts["uncertainty"] for s in ranked]) * scale
        values = means + spread * self.draws.standard_normal((THOMPSON_DRAWS, len(ranked)))
        winners = [ranked[i].model for i in values.argmax(axis=1)]
        return [greedy if w == best else w for w in winners]

    def _greedy(self, name: str, best: Scored, ranked: list[Scored],
                candidates: list[Candidate]) -> tuple[str, str]:
        """The choice without exploration: the best, a resident model close to it, or the
        default model when the evidence is thin; and why."""
        chosen, reason = best.model, f"best {name} score"
        if sticky := self._resident_within_margin(best, ranked, candidates):
            chosen, reason = sticky.model, f"resident, within {self.settings.stickiness:g} of the best"
        floor = self.settings.confidence_floor
        default = self.settings.default_model
        if floor > 0 and best.evidence < floor and any(s.model == default for s in ranked):
            chosen, reason = default, f"little evidence (< {floor:g}); default model"
        return chosen, reason

    def _resident_within_margin(self, best: Scored, scored: list[Scored],
                                candidates: list[Candidate]) -> Scored | None:
        """The best-scoring resident local model whose quality is within the stickiness margin of
        a best model that would have to be loaded first; None when there is no such trade."""
        local = {c.model for c in candidates if c.facts.locality != "remote" and c.entry is not None}
        if self.settings.stickiness <= 0 or best.model not in local or self.latency.is_resident(best.model):
            return None
        floor = best.parts["quality"] - self.settings.stickiness
        return next((s for s in scored[1:] if s.model in local and self.latency.is_resident(s.model)
                     and s.parts["quality"] >= floor), None)

    def remember(self, decision: Decision, profile: Profile, context: np.ndarray, scope: str = "") -> int:
        """Write the decision with its profile; returns the route's row id."""
        return self.memory.record_route(Route(
            request_id=decision.request_id, chosen=decision.chosen, preset=decision.preset,
            propensity=decision.propensity, explored=decision.explored, reason=decision.reason,
            candidates=[s.as_dict() for s in decision.scored], removed=decision.removed,
            prompt=profile.text, tokens=profile.tokens, task=profile.task,
            sensitive=profile.sensitive,
            profile={"task_probabilities": profile.task_probabilities,
                     "sensitivity": profile.sensitivity, "features": profile.features},
            embedding=profile.embedding, context=context.astype(np.float32),
            created_at=self.clock(), scope=scope))

    def learn(self, route_id: int, model: str, score: float, kind: str, context: np.ndarray,
              prior: float, weight: float = 1.0) -> None:
        """Record an outcome and update the bandit with it."""
        score = min(max(float(score), 0.0), 1.0)
        self.memory.record_outcome(route_id, model, score, kind, at=self.clock())
        with self._lock:
            self.bandit.update(model, context.astype(np.float64), score, prior, weight)
            self.outcomes_seen += 1

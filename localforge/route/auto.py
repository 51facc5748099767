"""The `auto` model in the server: profile the request, apply the policies, let the router choose,
write the decision down, and turn what happens next (feedback, errors, cut-off answers, a prompt
asked again) into outcomes the router learns from.

`auto` uses the default preset; `auto:<preset>` names one (`auto:cheap`, `auto:balanced`,
`auto:best`, or any preset of the config). `Routing` is also what makes these models in the
registry (`backends.registry.Routes`): it claims the `auto` names and builds their cards over the
other models, so every controller lists, shows and finds `auto` as it does any model. Blocking
work (profiling, sqlite, the bandit) runs in worker threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
import pluggy

from localforge import plugins
from localforge.backends.base import ModelCard, ModelDetails
from localforge.backends.registry import Entry, Registry
from localforge.config import Settings
from localforge.config.router import RouterSettings
from localforge.errors import BadRequest, NotFound
from localforge.inference import Inference
from localforge.memory.db import Database
from localforge.memory.outcomes import Memory
from localforge.profile.base import Profile
from localforge.profile.profiler import Profiling
from localforge.route import overflow, policies
from localforge.route.decision import Candidate, Decision
from localforge.route.facts import routing_facts
from localforge.route.router import Readiness, Router

log = logging.getLogger(__name__)

AUTO = "auto"
REPEAT_WINDOW_S = 300.0  # the same prompt again within five minutes: the first answer missed
PRUNE_EVERY_S = 3600.0  # how often routes past `retention_days` are deleted while serving
# implicit outcomes: what each signal says about the answer, and how much it counts
SIGNALS = {"error": (0.0, 1.0), "length": (0.3, 0.5), "repeat": (0.2, 0.5)}


def preset_of(model: str) -> str | None:
    """The preset an `auto` name asks for ("" = the default), or None for any other model."""
    name, _, tag = model.strip().lower().partition(":")
    if name != AUTO:
        return None
    return "" if tag in ("", "latest") else tag


@dataclass(slots=True)
class Routed:
    decision: Decision
    entries: dict[str, Entry]  # model -> registry entry, for the chosen model and the fallbacks
    profile: Profile
    context: np.ndarray

    @property
    def reason(self) -> str:
        return self.decision.reason


class Routing:
    def __init__(self, settings: RouterSettings, memory: Memory, profiling: Profiling,
                 registry: Registry, latency: Readiness | None = None, state_dir: Path | None = None,
                 scorers: list[Any] | None = None) -> None:
        self.settings = settings
        self.memory = memory
        self.profiling = profiling
        self.registry = registry
        dimensions = getattr(profiling.embedder, "dimensions", 384) if profiling.embedder else 384
        self.router = Router(settings, memory, dimensions, scorers, latency)
        self.state_path = state_dir / "bandit.npz" if state_dir else None
        self.pruned_at = 0.0

    # -- start and stop -------------------------------------------------------------------------

    def open(self) -> str:
        index = self.memory.open()
        self.prune()
        loaded = self.state_path is not None and self.router.bandit.load(self.state_path)
        learned = sum(a.n for a in self.router.bandit.arms.values())
        if not loaded or learned != self._learnable():
            self._relearn()  # the saved state is missing or behind sqlite (a crash): replay it
        self.router.outcomes_seen = sum(a.n for a in self.router.bandit.arms.values())
        return index

    def _rows(self) -> Any:
        return self.memory.db.execute(
            "select o.model, o.score, o.kind, r.context, r.candidates from outcomes o "
            "join routes r on r.id = o.route_id where r.context is not null order by o.id")

    def _learnable(self) -> int:
        return sum(1 for _ in self._rows())

    def _relearn(self) -> None:
        bandit = self.router.bandit
        bandit.arms.clear()
        for model, score, kind, blob, candidates in self._rows():
            context = np.frombuffer(blob, dtype=np.float32).astype(np.float64)
            if context.shape[0] != bandit.dimensions:
                continue
            parts = {c["model"]: c.get("parts", {}) for c in json.loads(candidates)}
            prior = float(parts.get(model, {}).get("prior", 0.5))
            bandit.update(model, context, score, prior, SIGNALS.get(kind, (0.0, 1.0))[1])

    def prune(self, now: float | None = None) -> int:
        """Delete the routes past `retention_days`, their outcomes and vectors. The bandit keeps
        only sums over them (no text); it is relearned from what is left at the next start."""
        now = now or self.router.clock()  # the clock routes are stamped with
        self.pruned_at = now
        if not self.settings.retention_days:
            return 0
        gone = self.memory.prune(now - self.settings.retention_days * 86400.0)
        if gone:
            log.info("forgot %d routed requests older than %g days", gone, self.settings.retention_days)
        return gone

    def close(self) -> None:
        self.memory.save()
        if self.state_path is not None:
            self.router.bandit.save(self.state_path)

    # -- deciding -------------------------------------------------------------------------------

    async def candidates(self, options: dict[str, Any] | None = None) -> list[Candidate]:
        """Every model that can answer, with its facts for a request with these options."""
        out = []
        for entry in await self.registry.entries():
            if "completion" not in entry.card.capabilities and entry.card.capabilities:
                continue  # embedding-only models cannot answer
            facts = routing_facts(entry.card.name, entry.card, self.settings.models)
            configured = self.settings.models.get(entry.card.name)
            if configured is None or not configured.context_length:
                facts.context_length = entry.loaded_context(options or {}) or facts.context_length
            out.append(Candidate(entry.card.name, facts, entry))
        return out

    def _spending(self, profile: Profile, candidates: list[Candidate], request: Inference) -> policies.Spending:
        """Today's remote spend against the server's cap and the request's key's, if any."""
        if self.settings.daily_budget is None and request.daily_budget is None:
            return policies.Spending()
        remote = {c.model: 1.0 for c in candidates if c.facts.locality == "remote"}
        spent, key_spent = self.memory.spent_since(day_start(), remote, request.scope)
        tokens = self.settings.expected_output_tokens
        return policies.Spending(spent, {c.model: c.facts.cost(profile.tokens, tokens) for c in candidates},
                                 key_spent, request.daily_budget)

    async def spent_today(self) -> float:
        """Dollars spent on remote models since midnight UTC, as the daily budget counts them."""
        remote = {c.model: 1.0 for c in await self.candidates() if c.facts.locality == "remote"}
        spent, _ = await anyio.to_thread.run_sync(self.memory.spent_since, day_start(), remote)
        return spent

    async def route(self, request: Inference, preset: str | None = None, dry_run: bool = False) -> Routed:
        """Choose a model for an `auto` request; raises when no model is left to choose."""
        if preset is None:
            preset = preset_of(request.model) or ""
        # an unknown preset fails before any work
        budget_s = self.router.preset(preset or None)[1].latency_budget_s
        profile = await self.profiling.aprofile(request)
        candidates = await self.candidates(request.options)
        spending = await anyio.to_thread.run_sync(self._spending, profile, candidates, request)
        kept, removed = policies.apply(profile, candidates, self.settings, spending)
        if not kept:
            raise policies.nobody_left(removed)
        decision, context = self.router.decide(profile, kept, request.request_id, preset or None,
                                               removed, explore=not dry_run, scope=request.scope)
        private = profile.sensitive and self.settings.private_stays_local
        decision = overflow.settle(decision, kept, budget_s, overflow.priority(request.priority), private)
        routed = Routed(decision, {c.model: c.entry for c in kept}, profile, context)
        log.debug("route %s -> %s (%s; exploration %.3f, propensity %.3f; removed %s)",
                  request.request_id, decision.chosen, decision.reason, decision.exploration,
                  decision.propensity, decision.removed or "none")
        if not dry_run:
            await anyio.to_thread.run_sync(self._remember, routed, request)
        return routed

    def _remember(self, routed: Routed, request: Inference) -> None:
        if self.router.clock() - self.pruned_at > PRUNE_EVERY_S:
            self.prune()
        earlier = self.memory.recent_prompt(routed.profile.text, REPEAT_WINDOW_S, scope=request.scope) \
            if routed.profile.text else None
        self.router.remember(routed.decision, routed.profile, routed.context, request.scope)
        if earlier is not None:  # asked again: the earlier answer did not satisfy
            self._signal(earlier["request_id"], earlier["chosen"], "repeat")

    # -- learning -------------------------------------------------------------------------------

    def _learn(self, request_id: str, model: str | None, score: float, kind: str, weight: float) -> str:
        route = self.memory.route(request_id)
        if route is None:
            raise NotFound(f"no routed request with id '{request_id}'")
        model = model or route["chosen"]
        candidates = {c["model"]: c for c in json.loads(route["candidates"])}
        prior = float(candidates.get(model, {}).get("parts", {}).get("prior", 0.5))
        context = np.frombuffer(route["context"], dtype=np.float32) if route["context"] else None
        if context is None or context.shape[0] != self.router.bandit.dimensions:
            self.memory.record_outcome(route["id"], model, score, kind)
        else:
            self.router.learn(route["id"], model, score, kind, context, prior, weight)
        return model

    async def feedback(self, request_id: str, score: float) -> str:
        """A user's judgement of an answer, 0..1; returns the model it was about."""
        if not 0.0 <= score <= 1.0:
            raise BadRequest("score must be between 0 and 1")
        return await anyio.to_thread.run_sync(self._learn, request_id, None, score, "feedback", 1.0)

    def _signal(self, request_id: str, model: str, kind: str) -> None:
        score, weight = SIGNALS[kind]
        with contextlib.suppress(NotFound):
            self._learn(request_id, model, score, kind, weight)

    async def signal(self, request_id: str, model: str, kind: str) -> None:
        """An implicit outcome: "error" (failed or timed out), "length" (cut off), "repeat"."""
        await anyio.to_thread.run_sync(self._signal, request_id, model, kind)

    async def judged(self, request_id: str, model: str, score: float, evaluator: str) -> None:
        """An evaluator's grade of an answer (0..1), learned like feedback."""
        await anyio.to_thread.run_sync(self._learn, request_id, model, score, evaluator, 1.0)

    # the `auto` models, as the registry lists and finds them (`backends.registry.Routes`)
    def claims(self, name: str) -> bool:
        return preset_of(name) is not None

    def card(self, name: str, others: list[ModelCard]) -> ModelCard:
        return card(self.settings, preset_of(name) or "", others)

    def cards(self, others: list[ModelCard]) -> list[ModelCard]:
        return cards(self.settings, others)

    def is_routed(self, request_id: str) -> bool:
        return self.memory.route_id(request_id) is not None


def day_start(now: float | None = None) -> float:
    """Midnight UTC of today, in unix seconds: when the daily budget starts again."""
    now = time.time() if now is None else now
    return now - now % 86400


def explain(routed: Routed) -> dict[str, Any]:
    """The dry run's answer: the profile, who the policies removed, every candidate's parts."""
    p = routed.profile
    return {
        **routed.decision.as_dict(),
        "profile": {"tokens": p.tokens, "task": p.task, "task_probabilities": p.task_probabilities,
                    "sensitive": p.sensitive, "sensitivity": p.sensitivity,
                    "features": {k: v for k, v in p.features.items() if isinstance(v, int | float | str | bool)}},
    }


def build(settings: Settings, pm: pluggy.PluginManager, db: Database,
          registry: Registry, latency: Readiness | None = None) -> Routing | None:
    """The `auto` model's routing, opened; None (and `auto` unavailable) without an embedder."""
    try:
        profiling = Profiling.from_plugins(pm, settings)
    except BadRequest as exc:
        log.warning("the auto model is off: %s", exc.message)
        return None
    scorers: list[Any] = plugins.collect(pm.hook.register_scorers, lambda s: s.name, settings=settings)
    dimensions = getattr(profiling.embedder, "dimensions", 384)
    memory = Memory(db, dimensions, settings.data_dir / "routes.hnsw",
                    store_prompts=settings.router.store_prompts)
    routing = Routing(settings.router, memory, profiling, registry, latency, settings.data_dir, scorers)
    index = routing.open()
    log.info("auto routing ready (vector index %s, %d outcomes learned)", index,
             routing.router.outcomes_seen)
    return routing


def cards(settings: RouterSettings, registry_cards: list[ModelCard]) -> list[ModelCard]:
    """`auto:latest` (the default preset) and one `auto:<preset>` per preset, for /api/tags."""
    names = ["latest", *sorted(settings.presets)]
    return [card(settings, n, registry_cards) for n in names]


def card(settings: RouterSettings, tag: str, registry_cards: list[ModelCard]) -> ModelCard:
    preset = settings.default_preset if tag in ("", "latest") else tag
    if preset not in settings.presets:
        raise BadRequest(f"unknown routing preset '{preset}' (known: {', '.join(sorted(settings.presets))})")
    dial = settings.presets[preset]
    candidates = [c for c in registry_cards if "completion" in c.capabilities or not c.capabilities]
    context = max((c.context_length for c in registry_cards), default=0)
    # as new as the newest model it routes to: it changes when they do
    modified = max((c.modified_at for c in registry_cards if c.modified_at), default=None)
    return ModelCard(
        modified_at=modified or datetime.now(UTC),
        name=f"{AUTO}:{tag or 'latest'}", backend="router", context_length=context,
        details=ModelDetails(format="router", family="auto", families=["auto"], parameter_size="",
                             quantization_level=""),
        # what a request may ask of it: a capability at least one candidate has
        capabilities=["completion", *[c for c in ("tools", "vision")
                                      if any(c in card.capabilities for card in candidates)]],
        model_info={"router.preset": preset, "router.cost_weight": dial.cost_weight,
                    "router.latency_weight": dial.latency_weight,
                    "router.candidates": [c.name for c in candidates]},
        modelfile_notes=[f"auto: routes each request to the best model for the '{preset}' preset"],
        locality="local")


def facts_info(settings: RouterSettings, model_card: ModelCard) -> dict[str, Any]:
    """A model's routing facts as /api/show model_info keys."""
    facts = routing_facts(model_card.name, model_card, settings.models).as_dict()
    return {f"localforge.routing.{k}": v for k, v in facts.items()}

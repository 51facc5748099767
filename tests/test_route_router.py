"""The router on a real sqlite memory: cold start from priors, the dial, exploration with its
propensity, learning from outcomes, and a third-party scorer's term."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import NO_EXPLORATION

from localforge.config.router import Preset, RouterSettings
from localforge.memory.db import open_db
from localforge.memory.outcomes import Memory
from localforge.profile.base import Profile
from localforge.route.decision import Candidate
from localforge.route.facts import RoutingFacts
from localforge.route.router import Router

DIM = 8
CHEAP = Candidate("cheap", RoutingFacts("cheap", quality={"general": 0.6, "coding": 0.3}))
DEAR = Candidate("dear", RoutingFacts("dear", locality="remote", input_price=10, output_price=30,
                                      quality={"general": 0.7, "coding": 0.9}))


def profile(task: str, seed: int = 0) -> Profile:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return Profile(text=f"a {task} question", tokens=50, task=task, task_probabilities={task: 1.0},
                   embedding=v / np.linalg.norm(v))


def router(tmp_path: Path, **settings: object) -> Router:
    memory = Memory(open_db(tmp_path / "db.sqlite"), DIM, tmp_path / "routes.hnsw")
    memory.open()
    base = {"seed": 0, **NO_EXPLORATION}
    return Router(RouterSettings(**{**base, **settings}), memory, DIM)  # type: ignore[arg-type]


def test_cold_start_follows_the_priors_and_the_dial(tmp_path: Path) -> None:
    r = router(tmp_path)
    coding, _ = r.decide(profile("coding"), [CHEAP, DEAR], "a", "best")
    assert coding.chosen == "dear"
    chat, _ = r.decide(profile("general"), [CHEAP, DEAR], "b", "balanced")
    assert chat.chosen == "cheap"  # 0.1 better is not worth the remote model's price
    parts = {s.model: s.parts for s in chat.scored}
    assert parts["dear"]["cost"] > parts["cheap"]["cost"]
    assert parts["dear"]["quality"] == pytest.approx(0.7)
    assert chat.propensity == 1.0 and not chat.explored


def test_exploration_is_bounded_and_logged_with_its_propensity(tmp_path: Path) -> None:
    r = router(tmp_path, exploration=0.2, exploration_start=0.2)
    decisions = [r.decide(profile("coding", i), [CHEAP, DEAR], str(i), "best")[0] for i in range(300)]
    explored = [d for d in decisions if d.explored]
    assert 30 < len(explored) < 100  # about 20%
    for d in decisions:
        assert d.exploration == pytest.approx(0.2)
        expected = 0.8 + 0.1 if d.chosen == "dear" else 0.1
        assert d.propensity == pytest.approx(expected)



def test_a_warmup_explores_uniformly_then_exploration_decays(tmp_path: Path) -> None:
    r = router(tmp_path, exploration=0.01, exploration_start=1.0, exploration_warmup=40,
               exploration_halflife=5)
    chosen = []
    for i in range(40):  # the warm-up: every call a uniform draw, logged with propensity 1/2
        p = profile("coding", i)
        d, context = r.decide(p, [CHEAP, DEAR], f"w{i}", "best")
        assert d.explored and d.exploration == pytest.approx(1.0)
        assert d.propensity == pytest.approx(0.5)
        chosen.append(d.chosen)
        r.learn(r.remember(d, p, context), d.chosen, 1.0, "replay", context, 0.5)
    assert 8 < chosen.count("cheap") < 32  # both models were tried, about evenly
    assert r.exploration() == pytest.approx(1.0)  # the decay starts only after the warm-up
    r.outcomes_seen += 95
    assert r.exploration() == pytest.approx(0.01 + 0.99 * 5 / 100)


def test_bad_outcomes_move_later_decisions(tmp_path: Path) -> None:
    r = router(tmp_path)
    before, _ = r.decide(profile("coding", seed=1), [CHEAP, DEAR], "first", "best")
    assert before.chosen == "dear"
    # a fixed number of bad outcomes, whichever model each decision chose: the assertions below
    # then hold with room to spare, not on a floating-point edge
    for i in range(40):  # the memory's pseudo-count (30) is outweighed only by more outcomes
        p = profile("coding", seed=1)
        d, context = r.decide(p, [CHEAP, DEAR], f"r{i}", "best")
        route_id = r.remember(d, p, context)
        prior = next(s.parts["prior"] for s in d.scored if s.model == "dear")
        r.learn(route_id, "dear", 0.0, "feedback", context, prior)
    after, _ = r.decide(profile("coding", seed=1), [CHEAP, DEAR], "last", "best")
    assert after.chosen == "cheap"
    dear = next(s for s in after.scored if s.model == "dear")
    assert dear.evidence > 35 and dear.parts["quality"] < 0.3


class Sunny:
    """A third-party signal: prefers local models."""

    name = "sunny"

    def score(self, profile: Profile, card: object) -> float:
        return 0.7 if getattr(card, "locality", "") == "local" else 0.0


def test_a_scorer_plugin_adds_a_named_term(tmp_path: Path) -> None:
    r = router(tmp_path)
    r.scorers = [Sunny()]
    d, _ = r.decide(profile("coding"), [CHEAP, DEAR], "s", "best")
    assert d.chosen == "cheap"
    parts = {s.model: s.parts for s in d.scored}
    assert parts["cheap"]["scorer:sunny"] == 0.7 and parts["dear"]["scorer:sunny"] == 0.0


def test_an_unknown_preset_is_a_clear_400(tmp_path: Path) -> None:
    from localforge.errors import BadRequest

    r = router(tmp_path, presets={"mine": Preset(cost_weight=1.0)})
    with pytest.raises(BadRequest, match="unknown routing preset 'lavish'.*balanced.*mine"):
        r.decide(profile("general"), [CHEAP, DEAR], "x", "lavish")


LOADABLE = SimpleNamespace(card=None)  # a registry entry: a model the scheduler can load


class Readiness:
    """The scheduler's answer to 'is it loaded?', as the router asks it."""

    def __init__(self, resident: set[str]) -> None:
        self.resident = resident

    def is_resident(self, name: str) -> bool:
        return name in self.resident

    def expected_load_s(self, card: object) -> float:
        return 30.0

    def expected_wait_s(self, name: str) -> float | None:
        return None  # the scheduler has not seen it: a load when it is not resident


def test_a_resident_model_within_the_margin_is_kept_over_loading_a_better_one(tmp_path: Path) -> None:
    big = Candidate("big", RoutingFacts("big", quality={"general": 0.72}), entry=LOADABLE)
    small = Candidate("small", RoutingFacts("small", quality={"general": 0.70}), entry=LOADABLE)
    r = router(tmp_path, stickiness=0.03)
    r.latency = Readiness({"small"})  # type: ignore[assignment]
    kept, _ = r.decide(profile("general"), [big, small], "a", "best")
    assert kept.chosen == "small" and kept.reason.startswith("resident")
    r.latency = Readiness({"big", "small"})  # type: ignore[assignment]
    assert r.decide(profile("general"), [big, small], "b", "best")[0].chosen == "big"
    far = Candidate("far", RoutingFacts("far", quality={"general": 0.60}), entry=LOADABLE)
    r.latency = Readiness({"far"})  # type: ignore[assignment]
    assert r.decide(profile("general"), [big, far], "c", "best")[0].chosen == "big"  # 0.12 is too much


def test_posterior_draws_explore_where_models_are_close_and_log_their_share(tmp_path: Path) -> None:
    close = Candidate("close", RoutingFacts("close", quality={"general": 0.68}))
    r = router(tmp_path, thompson_scale=1.0)
    decisions = [r.decide(profile("general", i), [CHEAP, close], str(i), "best")[0] for i in range(200)]
    tried = [d.chosen for d in decisions]
    assert 10 < tried.count("cheap") < 190  # 0.6 against 0.68 with no evidence: both are tried
    for d in decisions:  # the logged propensity is the share of draws that made the choice
        assert 0.0 < d.propensity <= 1.0
        assert d.explored == (d.chosen == "cheap")
    # a model far behind is hardly ever drawn
    far = Candidate("far", RoutingFacts("far", quality={"general": 0.05}))
    drawn = [r.decide(profile("general", i), [far, close], f"f{i}", "best")[0].chosen for i in range(200)]
    assert drawn.count("far") < 5

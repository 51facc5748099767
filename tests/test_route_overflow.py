"""Local first under load, without a server: the scheduler's wait estimate on a fake clock, and
what the router's decision becomes when the chosen local model's wait is over the budget, for
each priority, a private request and a spending cap. The server test is test_overflow_server.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import NO_EXPLORATION

from localforge.config.router import RouterSettings
from localforge.errors import BadRequest
from localforge.memory.db import open_db
from localforge.memory.outcomes import Memory
from localforge.profile.base import Profile
from localforge.route import overflow, policies
from localforge.route.decision import Candidate, Decision
from localforge.route.facts import RoutingFacts
from localforge.route.router import Router
from localforge.schedule.core import Ticket
from localforge.schedule.policy import Forge

GB = 10**9
DIM = 8
ENTRY = SimpleNamespace(card=None)  # a registry entry: a model the scheduler serves
BIG = Candidate("big", RoutingFacts("big", quality={"general": 0.8}), entry=ENTRY)
SMALL = Candidate("small", RoutingFacts("small", quality={"general": 0.5}), entry=ENTRY)
CLOUD = Candidate("cloud", RoutingFacts("cloud", locality="remote", input_price=1, output_price=2,
                                        tokens_per_s=80, quality={"general": 0.75}))


# -- the wait estimate ----------------------------------------------------------------------------

def test_the_wait_is_the_queue_over_the_slots_at_the_measured_service_time_plus_a_load() -> None:
    policy = Forge(10 * GB, parallel=2)
    config = policy.register("m", "m", GB, load_s=12.0)
    assert config.expected_wait_s == 12.0  # not resident: a load first
    policy.submit(Ticket(1, "m", 0.0))
    assert config.expected_wait_s == 12.0  # one queued, and two slots once it is loaded
    policy.decide(0.0)  # starts the load
    policy.loaded("m", 12.0, None, 12.0)
    [start] = policy.decide(12.0)
    assert start.tickets == (1,) and config.expected_wait_s == 0.0  # a slot is free
    policy.submit(Ticket(2, "m", 12.0))
    policy.decide(12.0)
    assert config.in_flight == 2
    service = config.expected_service_s
    assert config.expected_wait_s == pytest.approx(service / 2)  # the first of two slots to free up
    for ticket in (3, 4, 5):
        policy.submit(Ticket(ticket, "m", 12.0))
    assert config.expected_wait_s == pytest.approx(4 * service / 2)  # three ahead, and the one going
    # what a request takes is learned: ten slow ones and the wait follows
    for ticket in (1, 2):
        policy.finish(ticket, 12.0 + 30.0)
    policy.decide(42.0)
    assert config.expected_service_s > 3 * service
    assert config.expected_wait_s == pytest.approx(2 * config.expected_service_s / 2)


def test_a_model_that_must_wait_for_a_busy_ones_memory_waits_for_its_work_too() -> None:
    policy = Forge(6 * GB, parallel=1, starvation_s=30.0)  # room for one model of 5 GB
    busy = policy.register("busy", "busy", 5 * GB, load_s=10.0)
    other = policy.register("other", "other", 5 * GB, load_s=10.0)
    policy.submit(Ticket(1, "busy", 0.0))
    policy.decide(0.0)
    policy.loaded("busy", 10.0, None, 10.0)
    policy.decide(10.0)
    for ticket in (2, 3):
        policy.submit(Ticket(ticket, "busy", 10.0))
    assert busy.in_flight == 1 and len(busy.queue) == 2
    service = busy.expected_service_s
    # its own load, and the busy model's three requests first
    assert policy.expected_wait_s(other) == pytest.approx(10.0 + 3 * service)
    assert policy.expected_wait_s(busy) == busy.expected_wait_s == pytest.approx(3 * service)
    for ticket in range(4, 40):  # however long that queue, the starvation bound caps the wait
        policy.submit(Ticket(ticket, "busy", 10.0))
    assert policy.expected_wait_s(other) == pytest.approx(10.0 + 30.0)
    roomy = Forge(12 * GB, parallel=1)  # room for both: only its own load
    roomy.register("busy", "busy", 5 * GB, load_s=10.0)
    far = roomy.register("other", "other", 5 * GB, load_s=10.0)
    roomy.submit(Ticket(1, "busy", 0.0))
    roomy.decide(0.0)
    assert roomy.expected_wait_s(far) == 10.0


class Waits:
    """The scheduler's answers, as the router asks them: a wait per model."""

    def __init__(self, waits: dict[str, float]) -> None:
        self.waits = waits

    def is_resident(self, name: str) -> bool:
        return True

    def expected_load_s(self, card: object) -> float:
        return 0.0

    def expected_wait_s(self, name: str) -> float | None:
        return self.waits.get(name)


def router(tmp_path: Path, waits: dict[str, float]) -> Router:
    memory = Memory(open_db(tmp_path / "db.sqlite"), DIM, tmp_path / "routes.hnsw")
    memory.open()
    r = Router(RouterSettings(seed=0, **NO_EXPLORATION), memory, DIM)  # type: ignore[arg-type]
    r.latency = Waits(waits)  # type: ignore[assignment]
    return r


def profile() -> Profile:
    v = np.random.default_rng(0).normal(size=DIM).astype(np.float32)
    return Profile(text="a question", tokens=50, task="general", task_probabilities={"general": 1.0},
                   embedding=v / np.linalg.norm(v))


def decide(tmp_path: Path, waits: dict[str, float], candidates: list[Candidate] | None = None,
           removed: dict[str, str] | None = None) -> Decision:
    candidates = candidates if candidates is not None else [BIG, SMALL, CLOUD]
    decision, _ = router(tmp_path, waits).decide(profile(), candidates, "r", "best", removed)
    assert decision.chosen == "big"  # the best quality, whatever its queue ("best" ignores latency)
    return decision


def test_the_router_puts_the_wait_beside_every_local_candidates_answer_time(tmp_path: Path) -> None:
    decision = decide(tmp_path, {"big": 45.0, "small": 0.0})
    parts = {s.model: s.parts for s in decision.scored}
    assert parts["big"]["wait_s"] == 45.0 and parts["small"]["wait_s"] == 0.0
    assert parts["cloud"]["wait_s"] == 0.0
    # the score weighs the answer's own time; the queue is the overflow rule's
    assert parts["big"]["latency_s"] == parts["big"]["service_s"] == pytest.approx(256 / 30.0)
    assert parts["cloud"]["service_s"] == pytest.approx(256 / 80.0 + 0.5)


def test_within_the_budget_the_choice_stands(tmp_path: Path) -> None:
    decision = decide(tmp_path, {"big": 9.0, "small": 0.0})
    for level in overflow.PRIORITIES:
        assert overflow.settle(decision, [BIG, SMALL, CLOUD], 10.0, level) is decision


def test_normal_priority_takes_a_free_local_model_then_a_remote_one(tmp_path: Path) -> None:
    free_small = overflow.settle(decide(tmp_path, {"big": 45.0, "small": 0.0}), [BIG, SMALL, CLOUD], 10.0)
    assert free_small.chosen == "small" and not free_small.overflow
    assert free_small.reason.startswith("overflow to local small: big would wait ~45s, over the 10s budget")
    busy = overflow.settle(decide(tmp_path, {"big": 45.0, "small": 30.0}), [BIG, SMALL, CLOUD], 10.0)
    assert busy.chosen == "cloud" and busy.overflow and busy.propensity == 1.0
    assert busy.reason.startswith("overflow to remote cloud")


def test_high_priority_goes_remote_at_once(tmp_path: Path) -> None:
    decision = overflow.settle(decide(tmp_path, {"big": 45.0, "small": 0.0}), [BIG, SMALL, CLOUD], 10.0, "high")
    assert decision.chosen == "cloud" and decision.overflow and "(high priority)" in decision.reason


def test_low_priority_queues_locally(tmp_path: Path) -> None:
    decision = overflow.settle(decide(tmp_path, {"big": 45.0, "small": 30.0}), [BIG, SMALL, CLOUD], 10.0, "low")
    assert decision.chosen == "big" and not decision.overflow
    assert decision.reason.startswith("queued locally: low priority (big would wait ~45s")


def test_private_data_queues_locally_whatever_the_priority(tmp_path: Path) -> None:
    for level in overflow.PRIORITIES:
        decision = overflow.settle(decide(tmp_path, {"big": 45.0, "small": 0.0}), [BIG, SMALL, CLOUD],
                                   10.0, level, private=True)
        assert decision.chosen == "big" and not decision.overflow
        assert decision.reason.startswith("queued locally: private data never overflows")


def test_a_remote_model_slower_than_the_queue_is_no_overflow_for_normal_priority(tmp_path: Path) -> None:
    slow_cloud = Candidate("cloud", RoutingFacts("cloud", locality="remote", tokens_per_s=2,
                                                 quality={"general": 0.75}))
    decision = overflow.settle(decide(tmp_path, {"big": 45.0, "small": 30.0}, [BIG, SMALL, slow_cloud]),
                               [BIG, SMALL, slow_cloud], 10.0)
    assert decision.chosen == "big" and decision.reason.startswith("queued locally: no model to overflow to")
    # high priority goes anyway: it asked for a remote answer as soon as the queue is too long
    high = overflow.settle(decide(tmp_path, {"big": 45.0, "small": 30.0}, [BIG, SMALL, slow_cloud]),
                           [BIG, SMALL, slow_cloud], 10.0, "high")
    assert high.chosen == "cloud"


def test_the_spending_cap_keeps_an_overflow_local_and_says_why(tmp_path: Path) -> None:
    settings = RouterSettings(daily_budget=1.0)
    spent = policies.Spending(spent_today=0.9999, expected={"cloud": CLOUD.facts.cost(50, 256)})
    kept, removed = policies.apply(profile(), [BIG, SMALL, CLOUD], settings, spent)
    assert [c.model for c in kept] == ["big", "small"] and "daily spending cap of $1" in removed["cloud"]
    decision = overflow.settle(decide(tmp_path, {"big": 45.0, "small": 30.0}, kept, removed), kept, 10.0, "high")
    assert decision.chosen == "big" and not decision.overflow
    assert "cloud removed by budget: the daily spending cap of $1 is reached" in decision.reason
    # a key's own cap does the same under a server with none
    mine = policies.Spending(expected={"cloud": 0.01}, key_spent_today=0.5, key_budget=0.5)
    _, removed = policies.apply(profile(), [BIG, CLOUD], RouterSettings(), mine)
    assert "this API key's daily spending cap of $0.5 is reached" in removed["cloud"]


def test_no_budget_never_overflows(tmp_path: Path) -> None:
    decision = decide(tmp_path, {"big": 4500.0, "small": 0.0})
    assert overflow.settle(decision, [BIG, SMALL, CLOUD], None, "high") is decision
    assert overflow.settle(decision, [BIG, SMALL, CLOUD], float("inf"), "high") is decision


def test_a_priority_is_one_of_three() -> None:
    assert overflow.priority(None) == "normal" and overflow.priority(" HIGH ") == "high"
    with pytest.raises(BadRequest, match="invalid priority 'urgent': expected one of high, normal, low"):
        overflow.priority("urgent")

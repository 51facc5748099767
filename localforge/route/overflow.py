"""Local first under load: when the local model the router chose would keep a request waiting past
its preset's latency budget, the request overflows to a remote model; one that must stay local
queues, and says why.

The router chooses on quality, cost and the time an answer takes (a load included), not on the
queue: the queue is this rule's. Its choice stands while its expected wait (the scheduler's queue
over the model's slots at its measured service time, plus a load when it is not ready:
`Router.expected_wait`) is within the budget, so local models serve everything they can and
`auto` comes back to them as soon as their queue drains. Past the budget, by the request's
priority:

- `high` goes to the best remote candidate at once (else a local one within the budget);
- `normal` takes another local model that is within the budget (one already resident beside
  it), else the best remote candidate, if that one is expected to answer sooner;
- `low` queues locally: it is batch work that can wait for the GPU.

A request with private data never overflows: the privacy policy has already removed every remote
candidate, and its `X-LocalForge-Route` says it queued locally. The daily spending caps (the
server's and the API key's) remove remote candidates the same way, so a request past its cap
queues too. A pure function of the decision's parts: the server and `bench overflow` share it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from localforge.errors import BadRequest
from localforge.route.decision import Candidate, Decision, Scored

Priority = Literal["high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")


def priority(value: str | None) -> Priority:
    """A priority as a header or a key's settings spell it; "" or None is normal."""
    text = (value or "normal").strip().lower()
    if text not in PRIORITIES:
        raise BadRequest(f"invalid priority {value!r}: expected one of {', '.join(PRIORITIES)}")
    return text  # type: ignore[return-value]


def settle(decision: Decision, candidates: list[Candidate], budget_s: float | None,
           level: Priority = "normal", private: bool = False) -> Decision:
    """The decision, or the one that replaces it when the chosen local model's wait is over the
    budget: another model (an overflow), or the same with the reason it queues."""
    remote = {c.model for c in candidates if c.facts.locality == "remote"}
    parts = {s.model: s for s in decision.scored}
    chosen = parts.get(decision.chosen)
    if budget_s is None or chosen is None or decision.chosen in remote:
        return decision
    wait = chosen.parts.get("wait_s", 0.0)
    if wait <= budget_s:
        return decision
    over = f"{decision.chosen} would wait ~{wait:.0f}s, over the {budget_s:g}s budget"
    if private:
        return _queued(decision, f"queued locally: private data never overflows ({over})")
    if level == "low":
        return _queued(decision, f"queued locally: low priority ({over})")
    local = [s for s in decision.scored if s.model not in remote and s.model != decision.chosen
             and s.parts.get("wait_s", 0.0) <= budget_s]
    away = [s for s in decision.scored if s.model in remote]
    if level == "normal":  # a remote model that answers later than the queue is no help
        away = [s for s in away if _answered_in(s) < _answered_in(chosen)]
    order = (away + local) if level == "high" else (local + away)
    if not order:
        why = "; ".join(f"{model} removed by {reason}" for model, reason in sorted(decision.removed.items()))
        return _queued(decision, f"queued locally: no model to overflow to ({over}{'; ' + why if why else ''})")
    to = order[0]
    where = "remote" if to.model in remote else "local"
    return _moved(decision, to, f"overflow to {where} {to.model}: {over} ({level} priority)",
                  overflow=to.model in remote)


def _answered_in(s: Scored) -> float:
    """Seconds until the whole answer: the wait for a slot, then the answer itself."""
    return s.parts.get("wait_s", 0.0) + s.parts.get("service_s", 0.0)


def _queued(decision: Decision, reason: str) -> Decision:
    return dataclasses.replace(decision, reason=reason)


def _moved(decision: Decision, to: Scored, reason: str, overflow: bool) -> Decision:
    """The load decides, not the learned estimate: the choice is certain given the queue."""
    return dataclasses.replace(decision, chosen=to.model, reason=reason, overflow=overflow,
                               explored=False, propensity=1.0)

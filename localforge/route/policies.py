"""Hard constraints, applied before any scoring: a model a policy removes is never chosen.

Each policy looks at the request's profile and one candidate and returns why the candidate must
go, or None. When every candidate is removed the request fails with a message that names which
constraint removed whom: 400 when the request itself asks for what no model offers (a context
too long, a capability missing), 503 when the server's own rules (private data, remote off,
the spending cap) leave nobody.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from localforge.config.router import RouterSettings
from localforge.errors import BadRequest, LocalForgeError, Unavailable
from localforge.profile.base import Profile
from localforge.route.decision import Candidate


@dataclass(slots=True)
class Spending:
    """Dollars spent on remote models today, and this request's expected cost per model."""

    spent_today: float = 0.0
    expected: dict[str, float] | None = None
    key_spent_today: float = 0.0  # by the request's API key, where its key has a budget
    key_budget: float | None = None


Policy = Callable[[Profile, Candidate, RouterSettings, Spending], str | None]

# the policies whose removals are the request's doing (400) rather than the server's rules (503)
REQUEST_POLICIES = {"context", "capabilities"}


def remote_switch(profile: Profile, c: Candidate, s: RouterSettings, spending: Spending) -> str | None:
    if not s.remote and c.facts.locality == "remote":
        return "remote models are switched off"
    return None


def private_data(profile: Profile, c: Candidate, s: RouterSettings, spending: Spending) -> str | None:
    if s.private_stays_local and profile.sensitive and c.facts.locality == "remote":
        found = ", ".join(profile.sensitivity) or "sensitive data"
        return f"private data ({found}) stays on local models"
    return None


def context(profile: Profile, c: Candidate, s: RouterSettings, spending: Spending) -> str | None:
    limit = c.facts.context_length
    if limit and profile.tokens > limit:
        return f"the prompt's ~{profile.tokens} tokens do not fit its context of {limit}"
    return None


def required_capabilities(profile: Profile) -> list[str]:
    needed = []
    if profile.features.get("tools"):
        needed.append("tools")
    if profile.features.get("images"):
        needed.append("vision")
    if profile.features.get("suffix"):
        needed.append("insert")
    return needed


def capabilities(profile: Profile, c: Candidate, s: RouterSettings, spending: Spending) -> str | None:
    missing = [n for n in required_capabilities(profile) if n not in c.facts.capabilities]
    if missing:
        return f"lacks {', '.join(missing)}"
    return None


def spending_cap(profile: Profile, c: Candidate, s: RouterSettings, spending: Spending) -> str | None:
    if c.facts.locality != "remote":
        return None
    cost = (spending.expected or {}).get(c.model, 0.0)
    if s.daily_budget is not None and spending.spent_today + cost > s.daily_budget:
        return (f"the daily spending cap of ${s.daily_budget:g} is reached "
                f"(${spending.spent_today:.4f} spent today)")
    if spending.key_budget is not None and spending.key_spent_today + cost > spending.key_budget:
        return (f"this API key's daily spending cap of ${spending.key_budget:g} is reached "
                f"(${spending.key_spent_today:.4f} spent today)")
    return None


POLICIES: dict[str, Policy] = {
    "remote": remote_switch, "private": private_data, "context": context,
    "capabilities": capabilities, "budget": spending_cap,
}


def apply(profile: Profile, candidates: list[Candidate], settings: RouterSettings,
          spending: Spending | None = None) -> tuple[list[Candidate], dict[str, str]]:
    """The candidates every policy keeps, and for each removed model the first reason."""
    spending = spending or Spending()
    kept: list[Candidate] = []
    removed: dict[str, str] = {}
    for c in candidates:
        for name, policy in POLICIES.items():
            reason = policy(profile, c, settings, spending)
            if reason is not None:
                removed[c.model] = f"{name}: {reason}"
                break
        else:
            kept.append(c)
    return kept, removed


def nobody_left(removed: dict[str, str]) -> LocalForgeError:
    """The error for a request every candidate was removed from, naming who and why."""
    detail = "; ".join(f"{model} removed by {why}" for model, why in sorted(removed.items()))
    message = f"no model can serve this request: {detail or 'no models are installed'}"
    if removed and all(why.split(":", 1)[0] in REQUEST_POLICIES for why in removed.values()):
        return BadRequest(message)
    return Unavailable(message)

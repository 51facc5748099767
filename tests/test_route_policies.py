"""Hard constraints: who each policy removes, and the error when nobody is left."""

from __future__ import annotations

from localforge.config.router import RouterSettings
from localforge.errors import BadRequest, Unavailable
from localforge.profile.base import Profile
from localforge.route import policies
from localforge.route.decision import Candidate
from localforge.route.facts import RoutingFacts

LOCAL = Candidate("local", RoutingFacts("local", context_length=2048, capabilities=["completion"]))
REMOTE = Candidate("remote", RoutingFacts("remote", locality="remote", input_price=10, output_price=30,
                                          context_length=128000, capabilities=["completion", "tools"]))


def kept(profile: Profile, settings: RouterSettings | None = None,
         spending: policies.Spending | None = None) -> tuple[list[str], dict[str, str]]:
    models, removed = policies.apply(profile, [LOCAL, REMOTE], settings or RouterSettings(), spending)
    return [c.model for c in models], removed


def test_a_plain_request_keeps_everyone() -> None:
    assert kept(Profile(text="hello", tokens=3)) == (["local", "remote"], {})


def test_private_data_stays_local_unless_configured_otherwise() -> None:
    profile = Profile(text="card 4111 1111 1111 1111", tokens=10, sensitive=True, sensitivity=["card"])
    models, removed = kept(profile)
    assert models == ["local"]
    assert "private data (card)" in removed["remote"]
    assert kept(profile, RouterSettings(private_stays_local=False))[0] == ["local", "remote"]


def test_a_prompt_longer_than_a_context_removes_that_model() -> None:
    models, removed = kept(Profile(tokens=5000))
    assert models == ["remote"]
    assert "5000 tokens do not fit its context of 2048" in removed["local"]


def test_a_request_with_tools_needs_a_model_that_calls_tools() -> None:
    models, removed = kept(Profile(tokens=10, features={"tools": 1}))
    assert models == ["remote"]
    assert removed["local"] == "capabilities: lacks tools"


def test_remote_off_and_the_daily_cap() -> None:
    assert kept(Profile(tokens=10), RouterSettings(remote=False))[0] == ["local"]
    capped = RouterSettings(daily_budget=1.0)
    assert kept(Profile(tokens=10), capped, policies.Spending(0.5, {"remote": 0.01}))[0] == ["local", "remote"]
    models, removed = kept(Profile(tokens=10), capped, policies.Spending(0.995, {"remote": 0.01}))
    assert models == ["local"]
    assert "daily spending cap of $1" in removed["remote"]


def test_nobody_left_names_who_was_removed_and_why() -> None:
    too_long = policies.nobody_left({"local": "context: too long", "remote": "capabilities: lacks vision"})
    assert isinstance(too_long, BadRequest) and too_long.status == 400
    assert "local removed by context: too long" in too_long.message
    private = policies.nobody_left({"remote": "private: private data (card) stays on local models"})
    assert isinstance(private, Unavailable) and private.status == 503
    assert "remote removed by private" in private.message

"""The scheduling policies on a fake clock: the same code the server runs, without models."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from localforge.errors import ServerBusy, Unavailable
from localforge.schedule.core import LoadAction, StartAction, Ticket, UnloadAction
from localforge.schedule.policy import Fifo, Forge
from localforge.schedule.simulate import Arrival, SimModel, simulate

GB = 10**9
MODELS = {n: SimModel(n, 5 * GB, 2.0) for n in ("a", "b", "c")}


def forge(budget: int = 6 * GB, **kw: float) -> Forge:
    policy = Forge(budget, **kw)  # type: ignore[arg-type]
    for m in MODELS.values():
        policy.register(m.name, m.name, m.footprint, m.load_s)
    return policy


def test_a_resident_model_serves_its_queue_before_a_swap() -> None:
    trace = [Arrival(0.0, "a", 1.0), Arrival(0.1, "b", 1.0)]
    trace += [Arrival(0.2 + i * 0.1, "a", 1.0) for i in range(5)]
    fifo = simulate(Fifo(6 * GB), MODELS, trace)
    ours = simulate(forge(), MODELS, trace)
    assert ours.loads == 2 and fifo.loads == 3
    order = sorted(range(len(trace)), key=lambda i: ours.outcomes[i].started or 0)
    assert [trace[i].model for i in order] == ["a"] * 6 + ["b"]


def test_the_starvation_bound_forces_a_swap() -> None:
    # "a" has a steady stream of work; "b" must still start within the bound
    trace = [Arrival(i * 0.5, "a", 1.0) for i in range(100)] + [Arrival(1.0, "b", 1.0)]
    run = simulate(forge(starvation_s=10.0), MODELS, trace)
    assert run.outcomes[-1].wait_s <= 10.0
    assert run.loads >= 2 and all(o.finished for o in run.outcomes)


def test_eviction_takes_the_least_recently_used_idle_model() -> None:
    policy = Forge(11 * GB, starvation_s=30.0)
    for m in MODELS.values():
        policy.register(m.name, m.name, m.footprint, m.load_s)
    trace = [Arrival(0.0, "a", 1.0), Arrival(0.0, "b", 1.0), Arrival(5.0, "a", 1.0),
             Arrival(20.0, "c", 1.0)]
    run = simulate(policy, MODELS, trace)
    unloads = [key for _, kind, key in run.log if kind == "UnloadAction"]
    assert unloads[0] == "b"  # "a" was used at 5 s, "b" last at 1 s
    assert run.peak_bytes <= 11 * GB


def test_a_model_in_flight_is_never_evicted() -> None:
    policy = forge(starvation_s=0.0)
    policy.submit(Ticket(1, "a", 0.0))
    assert policy.decide(0.0) == [LoadAction("a")]
    policy.loaded("a", 2.0, None, 2.0)
    assert policy.decide(2.0) == [StartAction("a", (1,))]
    policy.submit(Ticket(2, "b", 2.0))
    assert not any(isinstance(a, UnloadAction) for a in policy.decide(50.0))  # "a" is busy
    policy.finish(1, 60.0)
    assert policy.decide(60.0) == [UnloadAction("a", "evict")]


def test_keep_alive_expires_an_idle_model() -> None:
    policy = forge()
    policy.submit(Ticket(1, "a", 0.0, keep_alive_s=10.0))
    policy.decide(0.0)
    policy.loaded("a", 2.0, None, 2.0)
    policy.decide(2.0)
    policy.finish(1, 3.0)
    assert policy.decide(12.0) == []
    assert policy.next_wake(12.0) == 13.0
    assert policy.decide(13.0) == [UnloadAction("a", "expired")]


def test_a_full_queue_and_a_model_too_big_are_refused() -> None:
    policy = forge(max_queue=1)  # type: ignore[arg-type]
    policy.submit(Ticket(1, "a", 0.0))
    with pytest.raises(ServerBusy) as busy:
        policy.submit(Ticket(2, "a", 0.0))
    assert "maximum pending requests exceeded" in busy.value.message
    policy.register("huge", "huge", 7 * GB, 1.0)
    with pytest.raises(Unavailable):
        policy.submit(Ticket(3, "huge", 0.0))


@st.composite
def traces(draw: st.DrawFn) -> tuple[list[Arrival], int, int]:
    """Random traces light enough that the bound can be kept: bursts are allowed, but the work
    (generation) fills at most half the trace's span, loads take up to 3 s and generations up to
    1.5 s, one or two models in memory. On an overloaded machine no policy can bound waits."""
    n = draw(st.integers(1, 40))
    gaps = draw(st.lists(st.floats(0.0, 8.0), min_size=n, max_size=n))
    models = draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n))
    services = draw(st.lists(st.floats(0.05, 1.5), min_size=n, max_size=n))
    assume(sum(services) <= 0.5 * max(sum(gaps), 1.0))
    at, trace = 0.0, []
    for gap, model, service in zip(gaps, models, services, strict=True):
        at += gap
        trace.append(Arrival(at, model, service))
    return trace, draw(st.sampled_from([5, 11])), draw(st.integers(1, 2))


@settings(max_examples=150, deadline=None)
@given(traces(), st.floats(0.2, 3.0))
def test_every_request_is_served_once_within_budget_and_bound(
        case: tuple[list[Arrival], int, int], load_s: float) -> None:
    trace, budget_gb, parallel = case
    models = {n: SimModel(n, 5 * GB, load_s) for n in "abc"}
    for cls in (Forge, Fifo):
        policy = cls(budget_gb * GB, parallel=parallel, starvation_s=30.0, min_resident_s=2.0)
        run = simulate(policy, models, trace)
        assert all((o.finished is not None) != bool(o.error) for o in run.outcomes)
        served = [o for o in run.outcomes if o.finished is not None]
        assert all(o.started is not None and o.started <= o.finished for o in served)
        assert run.peak_bytes <= budget_gb * GB
        if cls is Forge:
            assert not any(o.error for o in run.outcomes)
            assert max(o.wait_s for o in run.outcomes) <= 30.0


def test_a_busier_model_is_not_brought_in_when_that_would_starve_an_older_request() -> None:
    """Found by the property test: after `c`, bringing in `a` (three fresh requests) before `b`
    (one request, waiting far longer) left `b` no room for its own load within the bound."""
    at = [(0, "a", 1), (0, "a", 1), (0, "b", 1), (0, "b", 1), (1, "b", .5), (1, "c", 1), (7, "a", 1),
          (15, "a", 1), (15, "a", 1), (15, "a", 1), (15, "b", 1), (20, "c", .5), (20, "c", .5),
          (20, "a", .25), (22, "a", .25), (30, "a", 1), (30, "a", 1), (30, "a", 1)]
    trace = [Arrival(float(t), m, float(s)) for t, m, s in at]
    models = {n: SimModel(n, 5 * GB, 3.0) for n in "abc"}
    run = simulate(Forge(5 * GB, parallel=1, starvation_s=30.0, min_resident_s=2.0), models, trace)
    assert max(o.wait_s for o in run.outcomes) <= 30.0

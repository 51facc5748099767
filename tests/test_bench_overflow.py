"""`localforge bench overflow` on the simulated clock: what each policy does with a burst, and the
daily cap holding while localforge overflows."""

from __future__ import annotations

import json
from pathlib import Path

from localforge.bench import overflow
from localforge.cli import main


def test_the_three_policies_on_a_burst(tmp_path: Path, capsys: object) -> None:
    out, picture = tmp_path / "overflow.json", tmp_path / "overflow.png"
    assert main(["bench", "overflow", "--json", str(out), "--plot", str(picture)]) == 0
    figures = json.loads(out.read_text())
    local, remote, ours = figures["local_only"], figures["remote_first"], figures["localforge"]
    assert local["requests"] == remote["requests"] == ours["requests"] > 200
    assert local["remote_share"] == 0 and local["cost_usd"] == 0
    assert remote["remote_share"] == 1 and remote["sensitive_remote"] > 0  # it sends everything
    # localforge: private requests never leave; the burst's excess does; the quiet periods stay local
    assert ours["sensitive_remote"] == 0
    assert 0 < ours["remote_share"] < 0.5 and ours["cost_usd"] < remote["cost_usd"] / 2
    assert ours["p95_s"] < local["p95_s"]
    # low priority and private requests queue, so they wait longer than high priority ones
    assert ours["by_priority_p95_s"]["low"] > ours["by_priority_p95_s"]["high"]
    assert picture.stat().st_size > 10_000 and picture.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "localforge p95" in printed and "sensitive remote 0" in printed


def test_the_daily_cap_holds_under_overflow() -> None:
    capped = overflow.Setup(daily_budget=0.1)
    results, samples = overflow.run(capped)
    ours = results["localforge"]
    assert 0 < ours["cost_usd"] <= 0.1
    assert ours["remote_share"] < overflow.run(overflow.Setup())[0]["localforge"]["remote_share"]
    # once the cap is spent, the rest of the burst queues locally
    sent = [t for t, _, remote in samples["localforge"] if remote]
    burst_end = capped.quiet_s + capped.burst_s
    assert max(sent) < burst_end and ours["max_wait_s"] > capped.budget_s


def test_the_trace_has_its_shape() -> None:
    setup = overflow.Setup()
    trace = overflow.make_trace(setup)
    burst = [a for a in trace if setup.quiet_s <= a.at < setup.quiet_s + setup.burst_s]
    quiet = [a for a in trace if a.at < setup.quiet_s]
    per_s = len(burst) / setup.burst_s / (len(quiet) / setup.quiet_s)
    assert 5 < per_s < 11  # 4x against 0.5x of the capacity: 8 times the rate
    assert 0.05 < sum(a.sensitive for a in trace) / len(trace) < 0.15
    assert {a.priority for a in trace} == {"high", "normal", "low"}
    assert trace == overflow.make_trace(setup)  # seeded

"""`localforge bench overhead` runs the real profile and router and writes its figures (the
figures themselves are measured by running the command, not asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localforge import cli
from localforge.bench import overhead


def test_prompts_vary_and_are_unique() -> None:
    requests = overhead.prompts(50)
    texts = [r.prompt or r.messages[-1].content for r in requests]
    assert len(set(texts)) == 50
    assert {r.kind for r in requests} == {"chat", "generate"}
    assert max(map(len, texts)) > 5 * min(map(len, texts))


def test_the_command_prints_a_table_and_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOCALFORGE_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "overhead.json"
    assert cli.main(["bench", "overhead", "--prompts", "12", "--json", str(out)]) == 0
    printed = capsys.readouterr()
    assert "routing decision" in printed.out and "task classifier alone" in printed.out
    assert f"100/{overhead.WARM_UP + 12} requests (warm-up)" in printed.err  # progress, every 100
    figures = json.loads(out.read_text())
    assert figures["prompts"] == 12 and figures["router_included"] is True
    for key in ("decision", "profile", "embedding", "classifier", "policies_and_scoring"):
        assert 0 < figures[key]["p50_ms"] <= figures[key]["p99_ms"] <= figures[key]["max_ms"]
    assert figures["embedding"]["p50_ms"] < figures["decision"]["p99_ms"]

"""The replay's metrics (RouteLLM's PGR, APGR, CPT) on figures checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from localforge import config
from localforge.bench import metrics, replay
from localforge.bench.metrics import Point

WEAK, STRONG = 0.5, 0.75  # a gap of 0.25


def test_pgr_apgr_cpt_by_hand() -> None:
    points = [Point(0.25, 0.625), Point(0.5, 0.75)]  # PGR 0.5 at a quarter, 1.0 at a half
    # curve (0,0) (0.25,0.5) (0.5,1) (1,1): 0.25*0.25 + 0.25*0.75 + 0.5*1
    assert metrics.apgr(points, WEAK, STRONG) == pytest.approx(0.75)
    assert metrics.cpt(points, WEAK, STRONG, 0.5) == pytest.approx(0.25)
    # 80% lies 0.3/0.5 of the way from 0.25 to 0.5
    assert metrics.cpt(points, WEAK, STRONG, 0.8) == pytest.approx(0.4)


def test_random_routing_scores_one_half() -> None:
    points = [metrics.random_point(s, WEAK, STRONG) for s in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert metrics.apgr(points, WEAK, STRONG) == pytest.approx(0.5)
    assert metrics.cpt(points, WEAK, STRONG, 0.5) == pytest.approx(0.5)
    assert metrics.cpt(points, WEAK, STRONG, 0.8) == pytest.approx(0.8)


def test_points_in_any_order_and_a_curve_that_never_reaches_the_target() -> None:
    points = [Point(0.6, 0.6), Point(0.2, 0.55)]  # PGR 0.4 and 0.2, never 0.5 before the end
    assert metrics.apgr(points, WEAK, STRONG) == pytest.approx(
        0.2 * 0.1 + 0.4 * 0.3 + 0.4 * 0.7)
    assert metrics.cpt(points, WEAK, STRONG, 0.5) == pytest.approx(0.6 + 0.4 * 0.1 / 0.6)


class WordEmbedder:
    """A small real embedder: bag of hashed words, L2-normalised."""

    name = "words"
    dimensions = 32

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, sum(map(ord, word)) % self.dimensions] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def write_data(path: Path) -> None:
    # weak right on 4 of 8 (0.5), strong right on 6 of 8 (0.75); arithmetic is where they differ
    rows = [("What is 17 * 23?", 0, 1), ("What is 48 / 6 + 9?", 0, 1), ("Name a colour.", 1, 1),
            ("Name a fruit.", 1, 1), ("Capital of France?", 1, 1), ("Capital of Peru?", 1, 0),
            ("Solve 3x + 4 = 19.", 0, 1), ("Compute 12^2 - 7.", 0, 0)]
    path.write_text("\n".join(json.dumps({
        "prompt": p, "source": "ignored", "outcomes": {"weak-local": w, "strong-remote": s}})
        for p, w, s in rows))


def test_replay_baselines_from_a_small_file(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    write_data(data)
    models = tmp_path / "models.toml"
    models.write_text('[router]\nseed = 1\n[router.models."weak-local"]\nlocality = "local"\n'
                      'input_price = 0.1\noutput_price = 0.1\n[router.models."strong-remote"]\n'
                      'locality = "remote"\ninput_price = 10.0\noutput_price = 30.0\n')
    settings = config.load(models, environ={})
    report = replay.run(data, settings, progress=False, cache_dir=tmp_path / "cache",
                        embedder=WordEmbedder())
    assert (report.weak, report.strong) == ("weak-local", "strong-remote")
    assert report.baselines["always-cheapest"]["accuracy"] == pytest.approx(0.5)
    assert report.baselines["always-best"]["accuracy"] == pytest.approx(0.75)
    assert report.baselines["always-best"]["cost"] == pytest.approx(1.0)
    figures = report.figures()
    for p in figures["points"]:  # the router only ever reaches accuracies the data allows
        assert 0.0 <= p["share"] <= 1.0
        assert 0.25 <= p["accuracy"] <= 1.0
    assert {"apgr", "cpt50", "cpt80", "points"} <= set(figures)
    # beside auto: its estimator with every outcome revealed, the k-NN vote, random and the oracle
    routers = figures["routers"]
    assert set(routers) == {"full information", "k-NN vote", "random", "oracle"}
    assert routers["random"]["apgr"] == pytest.approx(0.5)
    assert routers["oracle"]["apgr"] >= max(r["apgr"] for r in routers.values())
    assert routers["oracle"]["cpt50"] <= 0.25  # two of the eight prompts hold the whole gap
    assert figures["gap_to_full_information"] == pytest.approx(
        routers["full information"]["apgr"] - figures["apgr"])
    assert "gap to full information" in replay.table(report)
    # the embeddings were cached: a second run reads them instead of embedding again
    assert len(list((tmp_path / "cache").glob("embeddings-*.npy"))) == 1


def test_plot_writes_a_png_and_the_command_reports_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from localforge import cli

    data = tmp_path / "data.jsonl"
    write_data(data)
    settings = config.load(None, environ={})
    report = replay.run(data, settings, progress=False, cache_dir=tmp_path / "cache", embedder=WordEmbedder())
    replay.plot(report, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "hi", "outcomes": {"a": 1}}\n{"prompt": "no outcomes"}\n')
    models = tmp_path / "models.toml"
    models.write_text("[router]\nseed = 0\n")
    assert cli.main(["bench", "replay", str(broken), "--models", str(models)]) == 2
    assert "broken.jsonl:2" in capsys.readouterr().err
    assert cli.main(["bench", "replay", str(data), "--models", str(models), "--holdout", "1.5"]) == 2
    assert "--holdout must be a fraction" in capsys.readouterr().err

"""The optional judge: a local model grades a sample of routed answers in the background, and the
router learns from its grades. Off unless `[judge] model` is set."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import ollama
import pytest
from conftest import smollm2_config, start_server, stop_server
from tiny_gguf import write_tiny_llama

from localforge import config
from localforge.errors import BadRequest
from localforge.route import judge


def test_the_judge_is_off_by_default_and_its_settings_are_checked(tmp_path: Path) -> None:
    assert judge.settings_of(config.load(environ={})) == ("", 0.1)
    file = tmp_path / "lf.toml"
    for text, problem in [('[judge]\nmodel = "auto"\n', "not auto"), ('[judge]\nmodel = "x"\nsample = 2\n', "sample"),
                          ('[judge]\nmodel = "../x"\n', "invalid model name")]:
        file.write_text(text)
        with pytest.raises(BadRequest, match=problem):
            judge.settings_of(config.load(file, environ={}))


def test_a_routed_answer_is_graded_in_the_background_and_learned(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    settings = smollm2_config() + '\n[judge]\nmodel = "smollm2:135m"\nsample = 1.0\n'
    running = start_server(tmp_path, models, settings)
    try:
        reply = ollama.Client(host=running.url).chat(
            "auto", messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
            options={"temperature": 0, "num_predict": 30})
        assert "Paris" in reply.message.content
        db = sqlite3.connect(running.data_dir / "localforge.db")
        deadline, graded = time.monotonic() + 60, []
        while not graded and time.monotonic() < deadline:
            graded = db.execute("select model, score from outcomes where kind = 'judge'").fetchall()
            time.sleep(0.2)
        assert len(graded) == 1
        model, score = graded[0]
        assert model == "smollm2:135m" and 0.0 <= score <= 1.0
        # the judge's own request went straight to its model, not through auto
        endpoints = [r[0] for r in db.execute("select endpoint from requests where requested_model = 'smollm2:135m'")]
        assert endpoints == ["judge"]
    finally:
        stop_server(running)


def test_the_judge_grades_when_its_model_must_first_be_loaded(tmp_path: Path) -> None:
    """auto answers with `tiny`; the judge's model is not loaded yet, so its request waits for a
    load after the answer was sent. It must not take the answered client for a gone one."""
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_llama(models / "tiny.gguf")
    settings = smollm2_config() + """
[router]
exploration = 0.0
exploration_start = 0.0
thompson_scale = 0.0
stickiness = 0.0

[router.models."tiny:latest"]
quality = { general = 0.9 }

[router.models."smollm2:135m"]
quality = { general = 0.1 }

[judge]
model = "smollm2:135m"
sample = 1.0
"""
    running = start_server(tmp_path, models, settings)
    try:
        client = ollama.Client(host=running.url)
        reply = client.chat("auto", messages=[{"role": "user", "content": "Name a colour."}],
                            options={"temperature": 0, "num_predict": 8})
        assert reply.done
        db = sqlite3.connect(running.data_dir / "localforge.db")
        deadline, graded = time.monotonic() + 90, []
        while not graded and time.monotonic() < deadline:
            graded = db.execute("select model from outcomes where kind = 'judge'").fetchall()
            time.sleep(0.2)
        judged = db.execute("select status, load_ns from requests where endpoint = 'judge'").fetchall()
        assert graded == [("tiny:latest",)], f"the judge's own request: {judged}"
        assert judged[0] == ("ok", judged[0][1]) and judged[0][1] > 0  # it did wait for a load
    finally:
        stop_server(running)

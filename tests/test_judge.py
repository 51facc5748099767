"""The optional judge: a local model grades a sample of routed answers in the background, and the
router learns from its grades. Off unless `[judge] model` is set. A remote judge needs `remote =
true`, and even then never reads a prompt the sensitivity profiler flagged."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import ollama
import pytest
from conftest import ROUTER_NO_EXPLORATION, RunningServer, smollm2_config, start_server, stop_server
from tiny_gguf import write_tiny_llama
from upstreams import Upstream, start_flaky

from localforge import config
from localforge.errors import BadRequest
from localforge.route import judge


def test_the_judge_is_off_by_default_and_its_settings_are_checked(tmp_path: Path) -> None:
    assert judge.settings_of(config.load(environ={})) == ("", 0.1, False)
    file = tmp_path / "lf.toml"
    file.write_text('[judge]\nmodel = "openai/gpt-4o-mini"\nremote = true\n')
    assert judge.settings_of(config.load(file, environ={})) == ("openai/gpt-4o-mini", 0.1, True)
    for text, problem in [('[judge]\nmodel = "auto"\n', "not auto"), ('[judge]\nmodel = "x"\nsample = 2\n', "sample"),
                          ('[judge]\nmodel = "../x"\n', "invalid model name"),
                          ('[judge]\nmodel = "x"\nremote = "yes"\n', "remote must be true or false"),
                          ('[judge]\nmodel = "x"\nallow_remote = true\n', "unknown judge setting")]:
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
    settings = smollm2_config() + "\n" + ROUTER_NO_EXPLORATION + """stickiness = 0.0

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


IBAN = "DE89 3704 0044 0532 0130 00"
SENSITIVE = f"Please wire 40 euros to {IBAN} before Friday and tell me when it is done."
PLAIN = "Name a colour you like."


def received(upstream: Upstream) -> list[str]:
    """Every body the stand-in remote endpoint was sent, as text."""
    return [str(r["body"]) for r in httpx.get(upstream.url.removesuffix("/v1") + "/requests").json()["requests"]]


def remote_config(cloud: Upstream, judge_section: str) -> str:
    """A local `tiny` that auto prefers, and `cloud/ok` on a stand-in remote endpoint."""
    return f"""
[[openai.endpoints]]
name = "cloud"
base_url = "{cloud.url}"
locality = "remote"
prefix = "cloud/"
models = ["ok"]

{ROUTER_NO_EXPLORATION}
[router.models."tiny:latest"]
quality = {{ general = 0.9 }}

[router.models."cloud/ok:latest"]
quality = {{ general = 0.1 }}
{judge_section}"""


def ask_auto(server: RunningServer, text: str) -> str:
    reply = httpx.post(server.url + "/api/chat", timeout=120, json={
        "model": "auto", "stream": False, "options": {"num_predict": 4},
        "messages": [{"role": "user", "content": text}]})
    assert reply.status_code == 200, reply.text
    return str(reply.headers["x-localforge-model"])


def judged(server: RunningServer, count: int) -> list[tuple[str, str]]:
    """Wait until the judge has made `count` requests; their (status, error)."""
    db = sqlite3.connect(server.data_dir / "localforge.db")
    deadline, rows = time.monotonic() + 60, []
    while len(rows) < count and time.monotonic() < deadline:
        rows = db.execute("select status, error from requests where endpoint = 'judge' order by created_at").fetchall()
        time.sleep(0.2)
    db.close()
    assert len(rows) == count, rows
    return rows


def test_a_remote_judge_never_reads_a_sensitive_prompt(tmp_path: Path) -> None:
    cloud = start_flaky(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_llama(models / "tiny.gguf")
    running = start_server(tmp_path, models, remote_config(
        cloud, '[judge]\nmodel = "cloud/ok"\nsample = 1.0\nremote = true\n'), log_level="debug")
    try:
        assert ask_auto(running, PLAIN) == "tiny:latest"
        judged(running, 1)
        deadline = time.monotonic() + 30
        while not received(cloud) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(PLAIN in body for body in received(cloud))  # opted in: a plain prompt is graded remotely

        assert ask_auto(running, SENSITIVE) == "tiny:latest"
        status, error = judged(running, 2)[1]
        assert status == "error" and "private data stays on local models" in error
        assert len(received(cloud)) == 1  # nothing more left the machine
        for body in received(cloud):
            assert IBAN not in body and IBAN.replace(" ", "") not in body and "wire 40 euros" not in body
        assert "the prompt was flagged sensitive" in running.log()
    finally:
        stop_server(running)
        cloud.stop()


def test_a_remote_judge_needs_an_opt_in(tmp_path: Path) -> None:
    cloud = start_flaky(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_llama(models / "tiny.gguf")
    running = start_server(tmp_path, models, remote_config(cloud, '[judge]\nmodel = "cloud/ok"\nsample = 1.0\n'))
    try:
        assert ask_auto(running, PLAIN) == "tiny:latest"
        status, error = judged(running, 1)[0]
        assert status == "error" and "'cloud/ok:latest' is remote" in error
        assert received(cloud) == []
        assert "set `remote = true` in [judge]" in running.log()
    finally:
        stop_server(running)
        cloud.stop()


def test_a_sensitive_prompt_does_not_fall_back_to_a_remote_model(tmp_path: Path) -> None:
    """The local model crashes on every decode: the request is retried on a fresh runner, then
    fails; the remote candidate, the only one left, is never tried with the private prompt."""
    cloud = start_flaky(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_llama(models / "tiny.gguf")
    running = start_server(tmp_path, models, remote_config(cloud, ""),
                           env={"LOCALFORGE_RUNNER_FAULT": "segv-decode@tiny"})
    try:
        reply = httpx.post(running.url + "/api/chat", timeout=120, json={
            "model": "auto", "stream": False, "options": {"num_predict": 4},
            "messages": [{"role": "user", "content": SENSITIVE}]})
        assert reply.status_code >= 500 and "error" in reply.json()
        assert reply.headers.get("x-localforge-model", "tiny:latest") == "tiny:latest"
        assert received(cloud) == []
        # a plain prompt, by contrast, does fall back to the remote model when tiny crashes
        plain = httpx.post(running.url + "/api/chat", timeout=120, json={
            "model": "auto", "stream": False, "options": {"num_predict": 4},
            "messages": [{"role": "user", "content": PLAIN}]})
        assert plain.status_code == 200, plain.text
        assert plain.headers["x-localforge-model"] == "cloud/ok:latest"
        assert [b for b in received(cloud) if IBAN in b or IBAN.replace(" ", "") in b] == []
    finally:
        stop_server(running)
        cloud.stop()

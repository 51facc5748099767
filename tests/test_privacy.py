"""Private prompts are never kept: by default no prompt text is stored, a prompt flagged sensitive
is never stored whatever the setting, old routes age out, and `localforge forget` wipes them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlite_utils
from conftest import ROUTER_NO_EXPLORATION, smollm2_config, start_server, stop_server
from tiny_gguf import write_tiny_llama

from localforge import config
from localforge.memory.db import open_db
from localforge.memory.outcomes import Memory, Route

pytestmark = pytest.mark.slow

CARD = "4111 1111 1111 1111"
DAY = 86400.0


def everything_stored(data_dir: Path) -> list[str]:
    """Every row of every table as text, and the raw bytes of every file in the data folder."""
    db = sqlite_utils.Database(data_dir / "localforge.db")
    rows = [f"{table}: {row}" for table in db.table_names() for row in db[table].rows]
    db.conn.close()
    files = [p.read_bytes().decode("latin-1") for p in data_dir.rglob("*") if p.is_file()]
    return rows + files


def test_a_card_number_and_an_api_key_are_never_stored(tmp_path: Path) -> None:
    api_key = f"sk-proj-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
    marker = f"zebra{uuid.uuid4().hex[:8]}"
    models = tmp_path / "models"
    models.mkdir()
    # store_prompts on: even then, what the sensitivity profiler flags is not written
    running = start_server(tmp_path, models, smollm2_config() + "[router]\nstore_prompts = true\n",
                           log_level="debug")
    try:
        for text in (f"My card is {CARD}, expiry 12/29. Is it a Visa?",
                     f"Why does OPENAI_API_KEY={api_key} give me a 401?",
                     f"Say hello to {marker}."):
            response = httpx.post(running.url + "/api/chat", timeout=120, json={
                "model": "auto", "stream": False, "options": {"num_predict": 2},
                "messages": [{"role": "user", "content": text}]})
            assert response.status_code == 200, response.text
    finally:
        stop_server(running)
    stored = everything_stored(running.data_dir) + [running.log()]
    assert any(marker in text for text in stored)  # a plain prompt was kept, as configured
    assert (running.data_dir / "routes.hnsw").exists()
    for text in stored:
        for secret in (CARD, CARD.replace(" ", ""), api_key, api_key[-16:]):
            assert secret not in text


def test_prompts_are_not_stored_by_default() -> None:
    settings = config.load(environ={})
    assert settings.router.store_prompts is False
    assert settings.router.retention_days == 30


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_old_routes_their_outcomes_and_vectors_age_out(tmp_path: Path) -> None:
    now = time.time()
    memory = Memory(open_db(tmp_path / "localforge.db"), 8, tmp_path / "routes.hnsw")
    memory.open()
    for name, age_days in (("old", 40), ("recent", 10), ("new", 0)):
        route_id = memory.record_route(Route(name, "m", prompt=name, embedding=unit(age_days),
                                             created_at=now - age_days * DAY))
        memory.record_outcome(route_id, "m", 1.0, "feedback")
    old_id = memory.route_id("old")

    assert memory.prune(now - 30 * DAY) == 1
    assert memory.route("old") is None and memory.route("recent") is not None
    assert memory.db.execute("select count(*) from outcomes where route_id = ?", [old_id]).fetchone()[0] == 0
    assert len(memory.index) == 2
    assert old_id not in [n.route_id for n in memory.neighbours(unit(40), 3)]
    memory.db.conn.close()

    again = Memory(open_db(tmp_path / "localforge.db"), 8, tmp_path / "routes.hnsw")
    assert again.open() == "loaded" and len(again.index) == 2  # the saved index agrees


def forget(data_dir: Path, *how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "localforge.cli", "forget", *how, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "LOCALFORGE_CONFIG": ""})


def test_forget_wipes_routes_before_a_date_or_all(tmp_path: Path) -> None:
    memory = Memory(open_db(tmp_path / "localforge.db"), 8, tmp_path / "routes.hnsw", store_prompts=True)
    memory.open()
    for name, when in (("january", "2025-01-15"), ("march", "2025-03-15")):
        created = time.mktime(time.strptime(when, "%Y-%m-%d"))
        route_id = memory.record_route(Route(name, "m", prompt=f"prompt of {name}", embedding=unit(len(name)),
                                             created_at=created))
        memory.record_outcome(route_id, "m", 0.0, "feedback", at=created)
    memory.save()
    memory.db.conn.close()

    before = forget(tmp_path, "--before", "2025-02-01")
    assert before.returncode == 0, before.stderr
    assert "forgot 1 routed request" in before.stdout
    stored = "".join(everything_stored(tmp_path))
    assert "prompt of january" not in stored and "prompt of march" in stored

    wiped = forget(tmp_path, "--all")
    assert wiped.returncode == 0, wiped.stderr
    assert "prompt of march" not in "".join(everything_stored(tmp_path))
    again = Memory(open_db(tmp_path / "localforge.db"), 8, tmp_path / "routes.hnsw")
    again.open()
    assert len(again.index) == 0

    assert forget(tmp_path).returncode != 0  # neither --all nor --before: nothing is wiped by accident


def raw_bytes(data_dir: Path) -> str:
    """Every file of the data folder, byte for byte, read before sqlite is opened: opening and
    closing the database would checkpoint its WAL into the main file and delete it."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in sorted(data_dir.rglob("*")) if p.is_file())


def crash_config(extra: str) -> str:
    """`tiny` answers and judges; `crashy` raises in its runner on every decode."""
    return f"""
{ROUTER_NO_EXPLORATION}{extra}
[router.models."tiny:latest"]
quality = {{ general = 0.9 }}

[router.models."crashy:latest"]
quality = {{ general = 0.0 }}

[judge]
model = "tiny"
sample = 1.0
"""


def plant(url: str, secret: str) -> None:
    """The secret goes through auto (and so the judge), and to a model whose runner crashes."""
    for model, ok in (("auto", True), ("crashy", False)):
        response = httpx.post(url + "/api/chat", timeout=120, json={
            "model": model, "stream": False, "options": {"num_predict": 3},
            "messages": [{"role": "user", "content": f"Tell me about {secret} in one line."}]})
        assert (response.status_code == 200) is ok, response.text
        assert secret not in response.text  # not even quoted in the crash's error


def wait_for_the_judge(data_dir: Path, count: int) -> None:
    db = sqlite3.connect(data_dir / "localforge.db")
    deadline, judged = time.monotonic() + 60, 0
    while judged < count and time.monotonic() < deadline:
        judged = db.execute("select count(*) from requests where endpoint = 'judge' and status = 'ok'").fetchone()[0]
        time.sleep(0.2)
    db.close()
    assert judged == count


def test_a_planted_secret_lands_nowhere_and_forget_wipes_a_stored_one(tmp_path: Path) -> None:
    """store_prompts off: after an auto request, its judge run and a runner crash, the secret is in
    no file of the data folder (sqlite, its WAL, the vector index) and nowhere in a debug log, nor
    in the dashboard's request list and health (the crash's stderr tail). Then with store_prompts on
    it is kept, as asked, until `localforge forget --all`, after which no byte of it is left."""
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_llama(models / "tiny.gguf")
    write_tiny_llama(models / "crashy.gguf", seed=5)
    env = {"LOCALFORGE_RUNNER_FAULT": "exception-decode@crashy"}
    secret = f"okapi{uuid.uuid4().hex[:12]}"  # nothing the sensitivity profiler flags
    (tmp_path / "off").mkdir()
    running = start_server(tmp_path / "off", models, crash_config(""), env=env, log_level="debug")
    try:
        plant(running.url, secret)
        wait_for_the_judge(running.data_dir, 1)
        for page in ("/ui/api/requests", "/ui/api/health", "/ui/api/routing", "/metrics"):
            shown = httpx.get(running.url + page, timeout=30)
            assert shown.status_code == 200 and secret not in shown.text, page
        assert "exception-decode" in running.log() or "InjectedFault" in running.log()  # it did crash
        assert secret not in raw_bytes(running.data_dir)  # the WAL too, while the server runs
    finally:
        stop_server(running)
    assert secret not in raw_bytes(running.data_dir)
    assert not [text for text in everything_stored(running.data_dir) if secret in text]
    assert secret not in running.log()

    kept = f"okapi{uuid.uuid4().hex[:12]}"
    data_dir = tmp_path / "on" / "data"
    (tmp_path / "on").mkdir()
    running = start_server(tmp_path / "on", models, crash_config("store_prompts = true\n"), env=env,
                           log_level="debug")
    try:
        plant(running.url, kept)
        wait_for_the_judge(running.data_dir, 1)
    finally:
        stop_server(running)
    assert kept in "".join(everything_stored(data_dir))  # kept, as configured (the routes table)
    assert kept not in running.log()
    wiped = forget(data_dir, "--all")
    assert wiped.returncode == 0, wiped.stderr
    assert kept not in raw_bytes(data_dir)
    assert not [text for text in everything_stored(data_dir) if kept in text]

"""The `auto` model end to end: a LocalForge serving SmolLM2 locally, and llama-cpp-python's own
OpenAI-compatible server over SmolLM2 standing in for a dear remote model. The priors make the
remote model best for code and the local one best for chat; the rest is what the router does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from conftest import ROUTER_NO_EXPLORATION, RunningServer, free_port, smollm2_config, start_server, stop_server
from upstreams import Upstream, remote_endpoint

pytestmark = pytest.mark.slow

LOCAL, REMOTE = "smollm2:135m", "cloud/smollm2:latest"
DEAD = "dead/ghost:latest"  # an endpoint nobody listens on: best at math, on paper
CODING = "Write a Python function that returns the reverse of a linked list, with type hints."
CHAT = "Hi there! How are you doing today?"
QUICK = {"num_predict": 4, "temperature": 0}


def config(upstream: Upstream) -> str:
    return smollm2_config() + f"""
{ROUTER_NO_EXPLORATION}seed = 1

[router.models."{LOCAL}"]
quality = {{ general = 0.7, instruction = 0.7, coding = 0.2, math = 0.2, reasoning = 0.4 }}

[router.models."{REMOTE}"]
quality = {{ general = 0.6, instruction = 0.6, coding = 0.95, math = 0.9, reasoning = 0.8 }}

[router.models."{DEAD}"]
context_length = 4096
quality = {{ general = 0.0, instruction = 0.0, coding = 0.0, math = 0.99, reasoning = 0.0 }}

[openai]
backoff_s = 0.05

[[openai.endpoints]]
name = "nowhere"
base_url = "http://127.0.0.1:{free_port()}/v1"
prefix = "dead/"
models = ["ghost"]
""" + remote_endpoint(upstream, 10.0, 30.0)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auto")


@pytest.fixture(scope="module")
def server(home: Path, cloud: Upstream) -> Iterator[RunningServer]:
    models = home / "models"
    models.mkdir(exist_ok=True)
    running = start_server(home, models, config(cloud))
    yield running
    stop_server(running)


def chat(server: RunningServer, text: str, model: str = "auto") -> httpx.Response:
    response = httpx.post(server.url + "/api/chat", timeout=120, json={
        "model": model, "messages": [{"role": "user", "content": text}], "stream": False,
        "options": QUICK})
    assert response.status_code == 200, response.text
    return response


def dry_run(server: RunningServer, text: str, model: str = "auto") -> dict:
    response = httpx.post(server.url + "/api/route", timeout=60, json={
        "model": model, "messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200, response.text
    return response.json()


def test_auto_and_its_presets_are_listed_and_shown(server: RunningServer) -> None:
    client = ollama.Client(host=server.url, timeout=60)
    names = {m.model for m in client.list().models}
    assert {"auto:latest", "auto:cheap", "auto:balanced", "auto:best", LOCAL, REMOTE} <= names, names
    shown = client.show("auto")
    assert shown.modelinfo["router.preset"] == "balanced"
    assert REMOTE in shown.modelinfo["router.candidates"]
    facts = client.show(REMOTE).modelinfo
    assert facts["localforge.routing.locality"] == "remote"
    assert facts["localforge.routing.output_price"] == 30.0


def test_auto_is_a_model_to_every_controller(server: RunningServer) -> None:
    """Listed after the models it chooses among, found by /v1 as by /api/show, and its load form
    answered at once; an unknown preset is a 400 everywhere, and auto is nothing to embed with."""
    tags = [m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]]
    assert tags.index("auto:latest") > tags.index(LOCAL)
    listed = [m["id"] for m in httpx.get(server.url + "/v1/models").json()["data"]]
    assert listed == tags
    assert httpx.get(server.url + "/v1/models/auto:cheap").json()["id"] == "auto:cheap"
    loaded = httpx.post(server.url + "/api/generate", json={"model": "auto:best"}, timeout=30).json()
    assert (loaded["done"], loaded["done_reason"]) == (True, "load")
    for method, path, payload in [("POST", "/api/show", {"model": "auto:nosuch"}),
                                  ("POST", "/api/generate", {"model": "auto:nosuch"}),
                                  ("POST", "/api/chat", {"model": "auto:nosuch", "messages": [
                                      {"role": "user", "content": "hi"}], "stream": False})]:
        refused = httpx.request(method, server.url + path, json=payload, timeout=30)
        assert refused.status_code == 400 and "unknown routing preset 'nosuch'" in refused.json()["error"]
    assert httpx.get(server.url + "/v1/models/auto:nosuch").status_code == 400
    embed = httpx.post(server.url + "/api/embed", json={"model": "auto", "input": "hi"}, timeout=30)
    assert embed.status_code == 404


def test_a_coding_prompt_goes_remote_and_a_chat_prompt_stays_local(server: RunningServer) -> None:
    coding = chat(server, CODING)
    assert coding.headers["X-LocalForge-Model"] == REMOTE
    assert coding.headers["X-LocalForge-Route"]
    assert coding.json()["request_id"] == coding.headers["X-LocalForge-Request-Id"]
    talk = chat(server, CHAT)
    assert talk.headers["X-LocalForge-Model"] == LOCAL


def test_the_dry_run_explains_and_agrees_with_what_happens(server: RunningServer) -> None:
    plan = dry_run(server, CODING)
    assert plan["model"] == REMOTE
    assert plan["profile"]["task"] == "coding"
    parts = {c["model"]: c["parts"] for c in plan["candidates"]}
    assert set(parts) == {LOCAL, REMOTE, DEAD}
    for part in ("prior", "memory", "linear", "quality", "cost_term", "latency_term"):
        assert part in parts[REMOTE]
    assert parts[REMOTE]["cost"] > parts[LOCAL]["cost"]
    assert chat(server, CODING).headers["X-LocalForge-Model"] == plan["model"]


def test_a_card_number_never_reaches_the_remote_model(server: RunningServer) -> None:
    secret = CODING + " My card is 4111 1111 1111 1111, use it in the test data."
    plan = dry_run(server, secret)
    assert plan["model"] == LOCAL
    assert "private" in plan["removed"][REMOTE]
    assert chat(server, secret).headers["X-LocalForge-Model"] == LOCAL
    # too long for the local model and private for the remote one: a 503 that names both
    nobody = httpx.post(server.url + "/api/chat", timeout=60, json={
        "model": "auto", "stream": False,
        "messages": [{"role": "user", "content": secret + " word" * 40000}]})
    assert nobody.status_code == 503
    error = nobody.json()["error"]
    assert f"{REMOTE} removed by private" in error and f"{LOCAL} removed by context" in error


def test_bad_feedback_and_bad_presets_get_clear_errors(server: RunningServer) -> None:
    missing = httpx.post(server.url + "/api/feedback", json={"request_id": "nope", "thumbs": "up"})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    both = httpx.post(server.url + "/api/feedback", json={"request_id": "x", "thumbs": "up", "score": 1})
    assert both.status_code == 400
    out_of_range = httpx.post(server.url + "/api/feedback", json={"request_id": "x", "score": 3})
    assert out_of_range.status_code in (400, 404)
    preset = httpx.post(server.url + "/api/chat", json={"model": "auto:lavish", "stream": False,
                                                        "messages": [{"role": "user", "content": "hi"}]})
    assert preset.status_code == 400 and "lavish" in preset.json()["error"]


def test_a_model_that_fails_before_its_first_token_hands_over_to_the_next(server: RunningServer) -> None:
    math = "Solve for x: 3x + 7 = 22. Show the arithmetic."
    plan = dry_run(server, math, "auto:best")
    assert plan["model"] == DEAD
    served = chat(server, math, "auto:best")
    assert served.headers["X-LocalForge-Model"] == plan["candidates"][1]["model"]
    assert served.headers["X-LocalForge-Route"].startswith(f"fallback: {DEAD} failed")
    # the failure is an outcome: the dead model now looks worse for such requests
    again = dry_run(server, math, "auto:best")
    dead = next(c for c in again["candidates"] if c["model"] == DEAD)
    assert dead["parts"]["quality"] < next(c for c in plan["candidates"] if c["model"] == DEAD)["parts"]["quality"]


def test_openai_clients_see_and_use_auto(server: RunningServer) -> None:
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=120)
    assert "auto:balanced" in {m.id for m in client.models.list()}
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": CHAT}], max_tokens=4, temperature=0)
    assert raw.headers["X-LocalForge-Model"] == LOCAL
    assert raw.parse().choices[0].message.content is not None


def test_the_route_command_prints_the_dry_run(server: RunningServer) -> None:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "localforge.cli", "route", CODING, "--json",
                           "--host", server.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"] in (LOCAL, REMOTE)
    table = subprocess.run([sys.executable, "-m", "localforge.cli", "route", CHAT, "--host", server.url],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and LOCAL in table.stdout and "QUALITY" in table.stdout


def test_feedback_changes_later_decisions_and_survives_a_restart(
        server: RunningServer, home: Path, cloud: Upstream) -> None:
    prompt = "Write a SQL query that lists the ten customers with the largest total orders."
    assert dry_run(server, prompt)["model"] == REMOTE
    for _ in range(12):
        served = chat(server, prompt, "auto:best")
        if served.headers["X-LocalForge-Model"] != REMOTE:
            break
        answer = httpx.post(server.url + "/api/feedback", json={
            "request_id": served.headers["X-LocalForge-Request-Id"], "thumbs": "down"})
        assert answer.status_code == 200 and answer.json()["model"] == REMOTE
    after = dry_run(server, prompt)
    assert after["model"] == LOCAL
    remote_parts = next(c["parts"] for c in after["candidates"] if c["model"] == REMOTE)
    assert remote_parts["memory"] + remote_parts["linear"] < -0.1

    stop_server(server)  # the module's server: the tests after this one start their own
    (home / "data" / "routes.hnsw").unlink()  # and the index is lost: rebuilt from sqlite
    models = home / "models"
    again = start_server(home, models, config(cloud))
    try:
        restarted = dry_run(again, prompt)
        assert restarted["model"] == LOCAL
        remote = next(c for c in restarted["candidates"] if c["model"] == REMOTE)
        assert remote["evidence"] > 1  # similar past requests found: the index was rebuilt
        assert remote["parts"]["linear"] == pytest.approx(remote_parts["linear"], abs=1e-4)  # bandit kept
    finally:
        stop_server(again)
    assert (home / "data" / "routes.hnsw").exists()  # saved again at shutdown

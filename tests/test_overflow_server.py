"""Local first under load, end to end: a LocalForge serving two local models (a tiny `slow` one
whose answers run to num_predict, the best by its priors, and a poorer `alpha`), with
llama-cpp-python's OpenAI-compatible server over SmolLM2 standing in for a remote model. A long
answer holds `slow`'s only slot; what `auto` does with the requests that arrive meanwhile depends
on their priority, their privacy and their API key's budget, and it says so in
`X-LocalForge-Route`. When the slot frees, `auto` comes back to `slow`."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import ROUTER_NO_EXPLORATION, RunningServer, start_server, stop_server
from tiny_gguf import write_tiny_llama
from upstreams import Upstream, remote_endpoint

pytestmark = pytest.mark.slow

LOCAL, SPARE, REMOTE = "slow:latest", "alpha:latest", "cloud/smollm2:latest"
OPEN, BATCH, BROKE, VIP = "sk-open", "sk-batch", "sk-broke", "sk-vip"
CHAT = "Hi there! How are you doing today?"
SECRET = "My card is 4111 1111 1111 1111; remind me what it is."
QUICK = {"num_predict": 4, "temperature": 0}
CHROMIUM = "/usr/bin/chromium"


def config(upstream: Upstream) -> str:
    return f"""
api_keys = ["{OPEN}", {{ key = "{BATCH}", priority = "low" }},
            {{ key = "{BROKE}", priority = "high", daily_budget = 0.0 }}, {{ key = "{VIP}", priority = "high" }}]

{ROUTER_NO_EXPLORATION}seed = 1

[router.presets.tight]          # a request waits at most a tenth of a second for a local slot
cost_weight = 12.0
latency_budget_s = 0.1

[router.models."{LOCAL}"]
quality = {{ general = 0.8, instruction = 0.8, coding = 0.8, math = 0.8, reasoning = 0.8, hard_reasoning = 0.8 }}

[router.models."{SPARE}"]
quality = {{ general = 0.3, instruction = 0.3, coding = 0.3, math = 0.3, reasoning = 0.3, hard_reasoning = 0.3 }}

[router.models."{REMOTE}"]
quality = {{ general = 0.6, instruction = 0.6, coding = 0.6, math = 0.6, reasoning = 0.6, hard_reasoning = 0.6 }}
""" + remote_endpoint(upstream, 1.0, 2.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cloud: Upstream) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("overflow")
    models = home / "models"
    models.mkdir()
    # a large vocabulary makes the end-of-text token rare: a greedy answer runs to num_predict
    write_tiny_llama(models / "slow.gguf", n_embd=512, n_layers=4, seed=13, extra_vocab=8000)
    write_tiny_llama(models / "alpha.gguf", seed=11)
    running = start_server(home, models, config(cloud))
    yield running
    stop_server(running)


def headers(key: str, priority: str | None = None) -> dict[str, str]:
    sent = {"Authorization": f"Bearer {key}"}
    if priority is not None:
        sent["X-LocalForge-Priority"] = priority
    return sent


def plan(server: RunningServer, key: str, priority: str | None = None, text: str = CHAT) -> dict[str, Any]:
    """The dry run: what `auto:tight` would do with this request now."""
    response = httpx.post(server.url + "/api/route", headers=headers(key, priority), timeout=60,
                          json={"model": "auto:tight", "messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200, response.text
    return response.json()


def chat(server: RunningServer, key: str, priority: str | None = None, text: str = CHAT) -> httpx.Response:
    response = httpx.post(server.url + "/api/chat", headers=headers(key, priority), timeout=120, json={
        "model": "auto:tight", "messages": [{"role": "user", "content": text}], "stream": False,
        "options": QUICK})
    assert response.status_code == 200, response.text
    return response


class Holder:
    """A long answer from `slow`, streamed in a thread: it holds the model's only slot until
    `release` closes the stream (the server cancels it) or it ends on its own."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.started = threading.Event()
        self.stop = threading.Event()
        self.ended_on_its_own = False
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.stream("POST", self.server.url + "/api/generate", headers=headers(OPEN), timeout=120, json={
                "model": "slow", "prompt": "count", "options": {"num_predict": 3500, "temperature": 0}}) as r:
            for line in r.iter_lines():
                self.started.set()
                if json.loads(line).get("done"):
                    self.ended_on_its_own = True
                if self.stop.is_set() or self.ended_on_its_own:
                    return

    def __enter__(self) -> Holder:
        self.thread.start()
        assert self.started.wait(60), "the long answer never started"
        return self

    def __exit__(self, *exc: object) -> None:
        assert not self.ended_on_its_own, "the long answer ended before the test was done with it"
        self.stop.set()
        self.thread.join(60)


def queued_for(server: RunningServer, model: str) -> float:
    text = httpx.get(server.url + "/metrics", headers=headers(OPEN)).text
    found = re.search(rf'^localforge_queue_depth{{model="{re.escape(model)}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def test_overflow_by_priority_privacy_and_budget(server: RunningServer, tmp_path: Path) -> None:
    for model in ("slow", "alpha"):  # both resident: a wait of a load is a wait too
        warm = httpx.post(server.url + "/api/generate", headers=headers(OPEN), timeout=120,
                          json={"model": model, "prompt": "hi", "stream": False, "options": QUICK})
        assert warm.status_code == 200, warm.text
    idle = plan(server, OPEN)
    assert idle["model"] == LOCAL and not idle["overflow"]
    assert {c["model"]: c["parts"]["wait_s"] for c in idle["candidates"]}[LOCAL] == 0.0

    with Holder(server):
        normal = plan(server, OPEN)  # another local model is free: it takes that one
        assert normal["model"] == SPARE and not normal["overflow"]
        assert normal["reason"].startswith(f"overflow to local {SPARE}: {LOCAL} would wait")
        high = plan(server, VIP)  # the key's priority: straight to the remote model
        assert high["model"] == REMOTE and high["overflow"], high
        assert high["reason"].startswith(f"overflow to remote {REMOTE}") and "(high priority)" in high["reason"]
        # the header may lower a key's priority, never raise it
        assert plan(server, OPEN, "high")["model"] == SPARE
        low = plan(server, BATCH, "high")
        assert low["model"] == LOCAL and low["reason"].startswith("queued locally: low priority")
        assert plan(server, VIP, "low")["model"] == LOCAL
        private = plan(server, VIP, text=SECRET)
        assert private["model"] == LOCAL and "private" in private["removed"][REMOTE]
        assert private["reason"].startswith("queued locally: private data never overflows")
        capped = plan(server, BROKE)  # high, but its key may not spend: a free local model it is
        assert capped["model"] == SPARE and not capped["overflow"]
        assert "this API key's daily spending cap of $0 is reached" in capped["removed"][REMOTE]

        served = chat(server, VIP)  # served by the remote model, and it says why
        assert served.headers["X-LocalForge-Model"] == REMOTE
        assert served.headers["X-LocalForge-Route"].startswith(f"overflow to remote {REMOTE}")
        # the private request queues behind the long answer; it is served when that one ends
        answers: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: answers.append(chat(server, VIP, text=SECRET)))
        waiting.start()
        until(lambda: queued_for(server, LOCAL) == 1)  # routed, and in the queue: now let go
    waiting.join(120)
    [queued] = answers
    assert queued.headers["X-LocalForge-Model"] == LOCAL
    assert queued.headers["X-LocalForge-Route"].startswith("queued locally: private data never overflows")

    # the queue drained: auto comes back to the local model
    until(lambda: plan(server, VIP)["model"] == LOCAL)
    assert chat(server, VIP).headers["X-LocalForge-Model"] == LOCAL
    # the dashboard counts the overflow as its own share
    routing = httpx.get(server.url + "/ui/api/routing", headers=headers(OPEN)).json()
    assert sum(b["overflow"] for b in routing["buckets"]) == 1
    served_by = {m: sum(b["counts"].get(m, 0) for b in routing["buckets"]) for m in routing["models"]}
    assert served_by == {LOCAL: 2}
    look_at_the_routing_view(server, tmp_path)


def look_at_the_routing_view(server: RunningServer, shots: Path) -> None:
    """As a person sees it: the overflow has its own entry in the legend and its own stripe."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 860})
        page.goto(server.url + "/ui#routing")
        page.fill("#key-input", OPEN)
        page.click("#key-form button")
        share = page.locator("li.overflow-share")
        sync_api.expect(share).to_contain_text("overflow to remote 33% (1)")
        sync_api.expect(page.locator(".bar-stack span.overflow")).to_have_count(1)
        page.screenshot(path=str(shots / "routing-overflow.png"), full_page=True)
        browser.close()


def test_a_bad_priority_is_a_clear_error_in_each_api(server: RunningServer) -> None:
    ollama_style = httpx.post(server.url + "/api/chat", headers=headers(OPEN, "urgent"), json={
        "model": "auto", "messages": [{"role": "user", "content": CHAT}], "stream": False})
    assert ollama_style.status_code == 400
    assert ollama_style.json() == {"error": "invalid priority 'urgent': expected one of high, normal, low"}
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=OPEN,
                           default_headers={"X-LocalForge-Priority": "urgent"})
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": CHAT}])
    assert "invalid priority 'urgent'" in raised.value.message


def test_key_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    from localforge.config import load
    from localforge.errors import BadRequest

    path = tmp_path / "bad.toml"
    path.write_text('api_keys = [{ key = "sk-x", priority = "urgent" }]\n')
    with pytest.raises(BadRequest, match="invalid configuration"):
        load(path, environ={})
    path.write_text('api_keys = [{ key = " " }]\n')
    with pytest.raises(BadRequest, match="an entry of api_keys is empty"):
        load(path, environ={})

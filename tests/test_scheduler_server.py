"""The scheduler seen over HTTP: a real server process, real llama.cpp loads of tiny models."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from conftest import RunningServer, start_server, stop_server
from tiny_gguf import write_tiny_llama


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sched-models")
    write_tiny_llama(folder / "alpha.gguf", seed=11)
    write_tiny_llama(folder / "beta.gguf", seed=12)
    # a large vocabulary makes the end-of-text token rare: a greedy answer runs to num_predict
    write_tiny_llama(folder / "slow.gguf", n_embd=512, n_layers=4, seed=13, extra_vocab=8000)
    return folder


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Iterator[RunningServer]:
    """A memory budget that holds one tiny model at a time (each takes 2.7 to 3.5 MB)."""
    server = start_server(tmp_path_factory.mktemp("one-slot"), models, 'ram_budget = "5MB"\n')
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Iterator[RunningServer]:
    """Room for every model, one request at a time per model, one request in the queue."""
    server = start_server(tmp_path_factory.mktemp("roomy"), models, "max_queue = 1\n")
    yield server
    stop_server(server)


def metric(server: RunningServer, name: str, model: str | None = None, pool: str | None = None) -> float:
    text = httpx.get(server.url + "/metrics").text
    label = f'{{model="{model}"}}' if model else f'{{pool="{pool}"}}' if pool else ""
    m = re.search(rf"^{re.escape(name + label)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def loaded(server: RunningServer) -> list[str]:
    return [m["name"] for m in httpx.get(server.url + "/api/ps").json()["models"]]


def test_one_model_at_a_time_and_the_ps_fields(one_slot: RunningServer) -> None:
    client = ollama.Client(host=one_slot.url)
    client.generate(model="alpha", prompt="hi", options={"num_predict": 2})
    assert loaded(one_slot) == ["alpha:latest"]
    ps = httpx.get(one_slot.url + "/api/ps").json()["models"][0]
    assert ps["size"] > 2_000_000 and ps["size_vram"] == 0 and ps["context_length"] == 2048
    assert ps["expires_at"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    client.generate(model="beta", prompt="hi", options={"num_predict": 2})
    assert loaded(one_slot) == ["beta:latest"]  # alpha was evicted to make room
    assert metric(one_slot, "localforge_evictions_total", "alpha:latest") == 1
    assert 2_000_000 < metric(one_slot, "localforge_memory_used_bytes", pool="ram") <= 5_000_000
    assert metric(one_slot, "localforge_memory_budget_bytes", pool="ram") == 5_000_000
    assert 'localforge_memory_budget_bytes{pool="vram"} 0' in httpx.get(one_slot.url + "/metrics").text


def test_load_and_unload_forms(one_slot: RunningServer) -> None:
    client = ollama.Client(host=one_slot.url)
    reply = client.generate(model="alpha", prompt="", keep_alive=-1)
    assert reply.done_reason == "load"
    assert loaded(one_slot) == ["alpha:latest"]
    assert httpx.get(one_slot.url + "/api/ps").json()["models"][0]["expires_at"].startswith("2318")
    reply = client.chat(model="alpha", messages=[], keep_alive=0)
    assert reply.done_reason == "unload"
    assert loaded(one_slot) == []


def test_keep_alive_expires(one_slot: RunningServer) -> None:
    ollama.Client(host=one_slot.url).generate(model="beta", prompt="hi", keep_alive="1s",
                                               options={"num_predict": 2})
    assert loaded(one_slot) == ["beta:latest"]
    deadline = time.monotonic() + 10
    while loaded(one_slot) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert loaded(one_slot) == []


def _hold(server: RunningServer) -> None:
    """A slow answer that keeps the model's only slot busy for a few seconds (2000 greedy tokens
    take about 4 s on an idle 2-core machine, longer on a busy one)."""
    httpx.post(server.url + "/api/generate", timeout=300, json={
        "model": "slow", "prompt": "hi", "stream": False,
        # no repeat penalty (Ollama's default is 1.1): with it this random model ends at token 191
        "options": {"num_predict": 2000, "temperature": 1, "seed": 7, "repeat_penalty": 1.0}})


def _until(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_queue_full_and_cancel_while_queued(roomy: RunningServer) -> None:
    waits_before = metric(roomy, "localforge_wait_seconds_count", "slow:latest")
    holder = threading.Thread(target=_hold, args=(roomy,))
    holder.start()
    try:
        _until(lambda: metric(roomy, "localforge_wait_seconds_count", "slow:latest")
               == waits_before + 1, timeout=60)

        def queued_then_gone() -> None:
            with contextlib.suppress(httpx.TimeoutException):
                httpx.post(roomy.url + "/api/generate", timeout=1.5,
                           json={"model": "slow", "prompt": "x", "stream": False})

        waiter = threading.Thread(target=queued_then_gone)
        waiter.start()
        _until(lambda: metric(roomy, "localforge_queue_depth", "slow:latest") == 1)
        busy = httpx.post(roomy.url + "/api/generate", json={"model": "beta", "prompt": "x"})
        assert busy.status_code == 503
        assert busy.json() == {"error": "server busy, please try again.  "
                                        "maximum pending requests exceeded"}
        assert int(busy.headers["Retry-After"]) >= 1
        waiter.join()
        _until(lambda: metric(roomy, "localforge_canceled_total") == 1)
        assert metric(roomy, "localforge_queue_depth", "slow:latest") == 0
    finally:
        holder.join()
    # the disconnected request never got a slot: no grant after the holder's
    time.sleep(1.0)
    assert metric(roomy, "localforge_wait_seconds_count", "slow:latest") == waits_before + 1


def test_metrics_are_prometheus_text(one_slot: RunningServer) -> None:
    response = httpx.get(one_slot.url + "/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE localforge_wait_seconds histogram" in response.text
    assert metric(one_slot, "localforge_loads_total", "alpha:latest") >= 1

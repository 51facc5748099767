"""No request hangs on a misbehaving upstream (issue 15). A real llama_cpp.server shares the model
`smollm2` with an endpoint that misbehaves: one of our own on loopback (accepts and never
answers, sends a 200 and closes, sends a 200 and nothing, stalls mid-stream), or a second
llama_cpp.server stopped with SIGSTOP. Each scenario counts served / clean error / hung."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import ROUTER_NO_EXPLORATION, RunningServer, free_port, stop_server
from upstreams import HERE, Upstream, _wait, posts, start_front, start_llama_server

ASK = {"model": "smollm2", "messages": [{"role": "user", "content": "Say hi."}],
       "options": {"num_predict": 3}}
CLIENT_GIVES_UP_S = 30.0  # far past the clocks below: reaching it means the request hung
# short clocks on the misbehaving endpoint only: the healthy one keeps the defaults, so a loaded
# test machine slowing the real model down does not fail it too
CLOCKS = "first_token_s = 3\nidle_s = 2\nconnect_timeout_s = 2\n"


def start_misbehaving(tmp: Path, mode: str) -> Upstream:
    port = free_port()
    log_path = tmp / f"misbehaving-{mode}-{port}.log"
    process = subprocess.Popen([sys.executable, str(HERE / "misbehaving_http.py"), str(port), mode],
                               stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    _wait(f"http://127.0.0.1:{port}/v1/models", process, log_path, {})
    return Upstream(f"http://127.0.0.1:{port}/v1", port, process, log_path)


def fleet_config(bad: tuple[str, Upstream], healthy: Upstream) -> str:
    return ("[openai]\ncooldown_s = 1\nbackoff_s = 0.05\nprobe_timeout_s = 1\n"
            f'[[openai.endpoints]]\nname = "{bad[0]}"\nbase_url = "{bad[1].url}"\n{CLOCKS}'
            f'[[openai.endpoints]]\nname = "box"\nbase_url = "{healthy.url}"\n')


def outcome(front: RunningServer, stream: bool) -> str:
    """served, clean error or hung, as a client sees it."""
    try:
        with httpx.Client(base_url=front.url, timeout=CLIENT_GIVES_UP_S) as http:
            response = http.post("/api/chat", json={**ASK, "stream": stream})
            if response.status_code != 200:
                assert "error" in response.json()
                return "clean error"
            lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    except httpx.TimeoutException:
        return "hung"
    if any("error" in line for line in lines):
        return "clean error"
    return "served" if lines and lines[-1].get("done") else "clean error"


def run(front: RunningServer, n: int, concurrent: int) -> Counter[str]:
    with ThreadPoolExecutor(concurrent) as pool:
        return Counter(pool.map(lambda i: outcome(front, stream=i % 2 == 0), range(n)))


def hits(upstream: Upstream) -> int:
    return int(httpx.get(upstream.url.removesuffix("/v1") + "/hits", timeout=5).json()["hits"])


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    running = start_llama_server(tmp_path_factory.mktemp("faults"))
    yield running
    running.stop()


@pytest.mark.parametrize("mode", ["silent", "closes", "headers"])
def test_nothing_sent_yet_is_retried_on_the_healthy_endpoint(box: Upstream, tmp_path: Path, mode: str) -> None:
    bad = start_misbehaving(tmp_path, mode)
    front = start_front(tmp_path / "front", fleet_config(("bad", bad), box))
    try:
        started = time.monotonic()
        counts = run(front, n=6, concurrent=3)
        took = time.monotonic() - started
        assert counts == Counter({"served": 6}), (counts, front.log()[-2000:])
        assert hits(bad) >= 1  # the bad endpoint was really tried
        assert took < 45, took  # a wedged attempt costs its first-token clock, not 600 s
        # the requests that failed together on it cooled it down once, at cooldown_s
        assert "cooled down for 2s" not in front.log() or "probe failed" in front.log()
    finally:
        stop_server(front)
        bad.stop()


def test_a_stream_that_stalls_after_its_first_piece_ends_with_an_error(box: Upstream, tmp_path: Path) -> None:
    bad = start_misbehaving(tmp_path, "stalls")
    front = start_front(tmp_path / "front", fleet_config(("bad", bad), box))
    try:
        counts = run(front, n=6, concurrent=3)
        assert counts["hung"] == 0, counts
        assert counts["clean error"] >= 1 and counts["clean error"] <= hits(bad), counts
        assert counts["served"] + counts["clean error"] == 6
        assert "no new piece of the answer for 2 s" in front.log()
    finally:
        stop_server(front)
        bad.stop()


def test_sigstop_on_a_real_upstream_hangs_nobody_and_sigcont_brings_it_back(
        box: Upstream, tmp_path: Path) -> None:
    other = start_llama_server(tmp_path)
    front = start_front(tmp_path / "front", fleet_config(("stopped", other), box))
    try:
        os.kill(other.process.pid, signal.SIGSTOP)
        counts = run(front, n=6, concurrent=3)
        assert counts == Counter({"served": 6}), (counts, front.log()[-2000:])
        os.kill(other.process.pid, signal.SIGCONT)
        before = posts(other)
        deadline = time.monotonic() + 15  # cool-down and probe intervals here are 1-4 s
        while posts(other) == before and time.monotonic() < deadline:
            assert outcome(front, stream=True) == "served"
        assert posts(other) > before, "the endpoint did not come back after SIGCONT"
    finally:
        if other.process.poll() is None:
            os.kill(other.process.pid, signal.SIGCONT)
        stop_server(front)
        other.stop()


def test_concurrent_failures_count_once_and_only_failed_probes_double(tmp_path: Path) -> None:
    """6 requests in flight on a dying endpoint once pushed its cool-down to 160 s."""
    import anyio
    from localforge_openai import from_openai

    from localforge.backends.fleet import Endpoint, Fleet, FleetSettings
    from localforge.errors import LocalForgeError

    bad = start_misbehaving(tmp_path, "closes")

    async def scenario() -> list[float]:
        async with httpx.AsyncClient() as client:
            fleet = Fleet(client, lambda e: client.build_request("GET", e.base_url + "/models"),
                          FleetSettings(retries=0, cooldown_s=0.2, max_cooldown_s=5, probe_timeout_s=1))
            fleet.add(Endpoint("bad", bad.url, "openai endpoint").configure(1, 2, 1))
            member = fleet.members["bad"]

            def build(endpoint: Endpoint) -> httpx.Request:
                return client.build_request("POST", endpoint.base_url + "/chat/completions", json={})

            async def ask() -> None:
                with contextlib.suppress(LocalForgeError):
                    await fleet.one(["bad"], build, lambda e, r: from_openai.stream(r, e.label))

            seen = []
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(ask)
            seen.append(member.cooldown_s)  # six failures in one window: one cool-down
            await anyio.sleep(0.3)
            await fleet.pick(["bad"], set())  # the probe passes: /models answers
            seen.append(member.cooldown_s)
            await ask()
            bad.stop()  # now probes fail too
            for _ in range(3):
                await anyio.sleep(member.cooled_until - time.monotonic() + 0.05)
                with contextlib.suppress(LocalForgeError):
                    await fleet.pick(["bad"], set())
                seen.append(member.cooldown_s)
            return seen

    try:
        assert anyio.run(scenario) == [0.2, 0.0, 0.4, 0.8, 1.6]
    finally:
        bad.stop()


def test_auto_falls_back_to_a_local_model_when_the_fleet_is_wedged(tmp_path: Path) -> None:
    """Issue 15: with the old 600 s timeout, `auto` hung on a wedged upstream instead of falling back."""
    from tiny_gguf import write_tiny_llama

    bad = start_misbehaving(tmp_path, "silent")
    (tmp_path / "front" / "models").mkdir(parents=True)
    write_tiny_llama(tmp_path / "front" / "models" / "tiny.gguf")
    config = (f'[openai]\ncooldown_s = 1\n[[openai.endpoints]]\nname = "bad"\nbase_url = "{bad.url}"\n{CLOCKS}'
              f'{ROUTER_NO_EXPLORATION}'
              '[router.models."smollm2:latest"]\nquality = { general = 0.99, chat = 0.99, coding = 0.99 }\n'
              '[router.models."tiny:latest"]\nquality = { general = 0.05, chat = 0.05, coding = 0.05 }\n')
    front = start_front(tmp_path / "front", config)
    try:
        with httpx.Client(base_url=front.url, timeout=CLIENT_GIVES_UP_S) as http:
            started = time.monotonic()
            answer = http.post("/api/chat", json={**ASK, "model": "auto", "stream": False})
            took = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-LocalForge-Model"] == "tiny:latest", answer.headers
        assert "fallback" in answer.headers["X-LocalForge-Route"]
        assert hits(bad) == 1 and took < 20
    finally:
        stop_server(front)
        bad.stop()

"""One model, two endpoints: two llama-cpp-python servers serve `smollm2` behind one LocalForge.
Traffic spreads; when one is killed the requests go to the other and none is lost; when it comes
back it is probed before it gets traffic again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
from conftest import RunningServer, stop_server
from upstreams import Upstream, posts, start_front, start_llama_server

ASK = {"messages": [{"role": "user", "content": "Say hi."}], "options": {"num_predict": 3}}


@pytest.fixture(scope="module")
def boxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Upstream]]:
    tmp = tmp_path_factory.mktemp("boxes")
    running = [start_llama_server(tmp), start_llama_server(tmp)]
    yield running
    for box in running:
        box.stop()


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, boxes: list[Upstream]) -> Iterator[RunningServer]:
    config = "[openai]\ncooldown_s = 1\nbackoff_s = 0.05\n" + "".join(
        f'[[openai.endpoints]]\nname = "box{i}"\nbase_url = "{box.url}"\n' for i, box in enumerate(boxes))
    running = start_front(tmp_path_factory.mktemp("fleet-front"), config)
    yield running
    stop_server(running)


def test_one_model_served_by_both(front: RunningServer) -> None:
    shown = ollama.Client(host=front.url).show("smollm2")
    assert shown.modelinfo["localforge.endpoints"] == ["box0", "box1"]


def test_traffic_spreads_over_both_endpoints(front: RunningServer, boxes: list[Upstream]) -> None:
    client = ollama.Client(host=front.url, timeout=60)
    before = [posts(b) for b in boxes]
    for _ in range(6):
        client.chat("smollm2", **ASK)
    served = [posts(b) - n for b, n in zip(boxes, before, strict=True)]
    assert served == [3, 3]


def test_a_killed_endpoint_loses_no_request_and_is_probed_when_back(
        front: RunningServer, boxes: list[Upstream], tmp_path: Path) -> None:
    client = ollama.Client(host=front.url, timeout=60)
    dead, alive = boxes
    dead.stop()
    before = posts(alive)
    replies = [client.chat("smollm2", **ASK) for _ in range(6)]
    assert all(r.done for r in replies)
    assert posts(alive) - before == 6

    revived = start_llama_server(tmp_path, port=dead.port)
    boxes[0] = revived  # the fixture stops it at the end
    time.sleep(1.5)  # past the cool-down
    for _ in range(4):
        client.chat("smollm2", **ASK)
    log = revived.log()
    assert posts(revived) >= 1
    # its first request from LocalForge was the probe, not a user's chat
    first_from_front = [line for line in log.splitlines() if '"GET /v1/models' in line or '"POST' in line]
    assert '"GET /v1/models' in first_from_front[1]  # [0] is start_llama_server's own readiness check

"""The upstream Ollama backend: a LocalForge whose only models are those of a second LocalForge
standing in for Ollama, driven end to end by the ollama client. What the front answers must be
what the upstream answers to the same request."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import ollama
import pytest
from conftest import RunningServer, stop_server
from upstreams import start_front

SEEDED = {"seed": 11, "temperature": 0.7, "num_predict": 8}


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, server: RunningServer) -> Iterator[RunningServer]:
    config = f'[[ollama.upstreams]]\nurl = "{server.url}"\nname = "box"\n'
    running = start_front(tmp_path_factory.mktemp("ollama-front"), config)
    yield running
    stop_server(running)


@pytest.fixture
def via(front: RunningServer) -> ollama.Client:
    return ollama.Client(host=front.url, timeout=120)


@pytest.fixture
def direct(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=120)


def test_upstream_models_are_listed_and_shown_like_local_ones(via: ollama.Client, direct: ollama.Client) -> None:
    ours = {m.model: m for m in via.list().models}
    theirs = {m.model: m for m in direct.list().models}
    assert set(theirs) <= set(ours)
    tiny = ours["tiny:latest"]
    assert tiny.digest == theirs["tiny:latest"].digest and tiny.size == theirs["tiny:latest"].size
    assert tiny.details.family == theirs["tiny:latest"].details.family == "llama"
    shown, upstream = via.show("smollm2:135m"), direct.show("smollm2:135m")
    assert shown.template == upstream.template
    assert shown.capabilities == upstream.capabilities
    assert shown.modelinfo["general.architecture"] == upstream.modelinfo["general.architecture"]
    assert shown.modelinfo["localforge.upstreams"] == ["box"]


def test_generate_with_options_matches_the_upstream(via: ollama.Client, direct: ollama.Client) -> None:
    ours = via.generate("tiny", "once upon a time", options=SEEDED)
    theirs = direct.generate("tiny", "once upon a time", options=SEEDED)
    assert ours.response == theirs.response and ours.response
    assert ours.eval_count == theirs.eval_count
    assert ours.context == theirs.context  # the upstream's token ids come back too


def test_chat_streams_through(via: ollama.Client, direct: ollama.Client) -> None:
    request = {"messages": [{"role": "user", "content": "What is the capital of France?"}],
               "options": {"temperature": 0, "num_predict": 12}}
    chunks = list(via.chat("smollm2:135m", stream=True, **request))
    assert len(chunks) > 2 and chunks[-1].done
    assert all(not c.done for c in chunks[:-1])
    assert "".join(c.message.content for c in chunks) == direct.chat("smollm2:135m", **request).message.content


def test_format_and_tools_are_forwarded(via: ollama.Client, direct: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool = {"type": "function", "function": {"name": "get_weather", "description": "weather",
                                             "parameters": schema}}
    for kwargs in ({"format": schema}, {"tools": [tool]}):
        request = {"messages": [{"role": "user", "content": "Weather in Paris?"}],
                   "options": {"temperature": 0, "num_predict": 16}, **kwargs}
        ours, theirs = via.chat("smollm2:135m", **request), direct.chat("smollm2:135m", **request)
        assert ours.message.content == theirs.message.content
        assert ours.message.tool_calls == theirs.message.tool_calls


def test_upstream_errors_keep_their_status_and_message(via: ollama.Client, direct: ollama.Client) -> None:
    image = base64.b64encode(b"\x89PNG not really").decode()
    errors = []
    for client in (via, direct):
        with pytest.raises(ollama.ResponseError) as caught:
            client.chat("tiny", messages=[{"role": "user", "content": "what is this?", "images": [image]}])
        errors.append(caught.value)
    assert errors[0].status_code == errors[1].status_code == 400
    assert errors[1].error in errors[0].error


def test_embeddings_match_the_upstream(via: ollama.Client, direct: ollama.Client) -> None:
    ours = via.embed("tiny", ["hello", "world"]).embeddings
    theirs = direct.embed("tiny", ["hello", "world"]).embeddings
    assert len(ours) == 2
    assert all(abs(a - b) < 1e-6 for a, b in zip(ours[0], theirs[0], strict=True))


def test_keep_alive_is_forwarded_and_upstream_ps_shows_in_ours(front: RunningServer, server: RunningServer,
                                                               via: ollama.Client) -> None:
    via.generate("tiny-plain", "a", options={"num_predict": 1}, keep_alive="7m")
    theirs = {m["name"]: m for m in httpx.get(server.url + "/api/ps").json()["models"]}
    ours = {m["name"]: m for m in httpx.get(front.url + "/api/ps").json()["models"]}
    assert "tiny-plain:latest" in theirs
    assert ours["tiny-plain:latest"]["expires_at"][:16] == theirs["tiny-plain:latest"]["expires_at"][:16]
    assert ours["tiny-plain:latest"]["size"] == theirs["tiny-plain:latest"]["size"]
    via.generate("tiny-plain", "a", options={"num_predict": 1}, keep_alive=0)
    theirs_after = {m["name"] for m in httpx.get(server.url + "/api/ps").json()["models"]}
    assert "tiny-plain:latest" not in theirs_after


def test_think_is_forwarded_and_the_upstream_decides(via: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        via.chat("tiny", messages=[{"role": "user", "content": "hi"}], think=True)
    assert err.value.status_code == 400 and "does not support thinking" in err.value.error
    assert via.chat("tiny", messages=[{"role": "user", "content": "hi"}], think=False,
                    options={"num_predict": 1}).done

"""The OpenAI-compatible backend, driven by the ollama client through a LocalForge whose only
models come from llama-cpp-python's OpenAI server (SmolLM2) and from a server that fails on
purpose."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from conftest import RunningServer, free_port, stop_server
from upstreams import Upstream, start_flaky, start_front, start_llama_server

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
GREEDY = {"temperature": 0, "num_predict": 20}


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    upstream = start_llama_server(tmp_path_factory.mktemp("llama"))
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def flaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    upstream = start_flaky(tmp_path_factory.mktemp("flaky"))
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def doomed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """A flaky server that the mid-stream test kills."""
    upstream = start_flaky(tmp_path_factory.mktemp("doomed"))
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, llama: Upstream, flaky: Upstream,
          doomed: Upstream) -> Iterator[RunningServer]:
    config = f"""
[openai]
backoff_s = 0.05
cooldown_s = 60

[[openai.endpoints]]
name = "llama"
base_url = "{llama.url}"
structured_output = "json_object"
input_price = 0.5
output_price = 1.5

[[openai.endpoints]]
name = "flaky"
base_url = "{flaky.url}"
prefix = "flaky/"
locality = "remote"

[[openai.endpoints]]
name = "doomed"
base_url = "{doomed.url}"
prefix = "doomed/"
models = ["dies", "ok"]

[[openai.endpoints]]
name = "nowhere"
base_url = "http://127.0.0.1:{free_port()}/v1"
models = ["ghost"]
"""
    server = start_front(tmp_path_factory.mktemp("front"), config)
    yield server
    stop_server(server)


@pytest.fixture
def client(front: RunningServer) -> ollama.Client:
    return ollama.Client(host=front.url, timeout=120)


def hits(upstream: Upstream) -> dict[str, int]:
    return httpx.get(upstream.url.removesuffix("/v1") + "/hits").json()["hits"]


def test_discovered_models_appear_in_tags_and_show(client: ollama.Client) -> None:
    listed = {m.model for m in client.list().models}
    assert {"smollm2:latest", "flaky/ok:latest", "doomed/dies:latest", "ghost:latest"} <= listed
    assert "doomed/always500:latest" not in listed  # the allow-list keeps it out
    shown = client.show("smollm2")
    assert shown.details.format == "openai"
    assert "completion" in (shown.capabilities or [])
    assert shown.modelinfo["localforge.endpoints"] == ["llama"]
    assert shown.modelinfo["localforge.output_price"] == 1.5


def test_chat_without_streaming(client: ollama.Client) -> None:
    reply = client.chat("smollm2", messages=[{"role": "user", "content": "What is the capital of France?"}],
                        options=GREEDY)
    assert "Paris" in reply.message.content
    assert reply.done and reply.eval_count


def test_chat_streams_pieces_then_a_final_chunk(client: ollama.Client) -> None:
    chunks = list(client.chat("smollm2", messages=[{"role": "user", "content": "Count to five."}],
                              options=GREEDY, stream=True))
    assert len([c for c in chunks if c.message.content]) >= 3
    assert chunks[-1].done and chunks[-1].done_reason in ("stop", "length")
    assert all(not c.done for c in chunks[:-1])


def test_generate_and_a_num_predict_limit(client: ollama.Client) -> None:
    reply = client.generate("smollm2", "Write a long story about a dragon.",
                            options={"temperature": 0, "num_predict": 5})
    assert reply.response and reply.done_reason == "length"
    assert reply.eval_count is not None and reply.eval_count <= 5


def test_structured_output_follows_the_schema(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    reply = client.chat("smollm2", format=schema, options={"temperature": 0, "num_predict": 60},
                        messages=[{"role": "user", "content": "Describe a person as JSON."}])
    data = json.loads(reply.message.content)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_embeddings_one_per_input_and_normalised(client: ollama.Client) -> None:
    result = client.embed("smollm2", ["The cat sat on the mat.", "Stock markets fell sharply."])
    first, second = result.embeddings
    assert len(first) == len(second) > 100
    assert math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-3)
    assert first != second


def test_a_tool_call_comes_back_as_an_ollama_tool_call(client: ollama.Client) -> None:
    reply = client.chat("smollm2", tools=[WEATHER_TOOL], options={"temperature": 0, "num_predict": 60},
                        messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    calls = reply.message.tool_calls or []
    assert calls and calls[0].function.name == "get_weather"
    assert "paris" in str(calls[0].function.arguments.get("city", "")).lower()


def test_a_500_is_retried_then_reported_naming_the_endpoint(client: ollama.Client, flaky: Upstream) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat("flaky/always500", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    assert "openai endpoint 'flaky'" in caught.value.error and "HTTP 500 after 3 tries" in caught.value.error
    assert hits(flaky)["always500"] == 3


def test_a_passing_500_is_retried_away(client: ollama.Client, flaky: Upstream) -> None:
    reply = client.chat("flaky/twice500", messages=[{"role": "user", "content": "hi"}])
    assert reply.message.content == "fine and dandy"
    assert hits(flaky)["twice500"] == 3


def test_a_429_is_retried_with_backoff_then_reported_as_busy(client: ollama.Client, flaky: Upstream) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate("flaky/ratelimited", "hi")
    assert caught.value.status_code == 503
    assert "rate limiting" in caught.value.error and "'flaky'" in caught.value.error
    assert hits(flaky)["ratelimited"] == 3


def test_a_down_endpoint_is_named_in_the_error(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat("ghost", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    assert "openai endpoint 'nowhere' (http://127.0.0.1:" in caught.value.error
    assert "ConnectError" in caught.value.error


def test_server_killed_mid_stream_ends_the_stream_cleanly_and_cools_down(
        front: RunningServer, doomed: Upstream) -> None:
    body = {"model": "doomed/dies", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", front.url + "/api/chat", json=body, timeout=30) as response:
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.iter_lines() if line.strip()]
    assert lines[0]["message"]["content"] == "fine"
    assert "stopped in the middle of the answer" in lines[-1]["error"]
    assert "'doomed'" in lines[-1]["error"]
    assert doomed.process.wait(timeout=5) == 1
    # the endpoint is cooled down: the next request is refused at once, naming it
    again = httpx.post(front.url + "/api/chat", json={**body, "model": "doomed/ok"}, timeout=30)
    assert again.status_code == 503
    assert "'doomed'" in again.json()["error"] and "cooled down" in again.json()["error"]


def test_openai_clients_stream_through_v1(front: RunningServer) -> None:
    import openai

    if httpx.post(front.url + "/v1/chat/completions", json={}).status_code == 404:
        pytest.skip("this build has no /v1/chat/completions controller")
    client = openai.OpenAI(base_url=front.url + "/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="smollm2", stream=True, temperature=0, max_tokens=20,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "Paris" in text


def test_bad_config_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as caught:
        start_front(tmp_path, '[[openai.endpoints]]\nname = "x"\nbase_ur1 = "http://127.0.0.1:9/v1"\n')
    assert "invalid [openai] configuration" in str(caught.value)


def test_the_example_config_in_contrib_is_valid() -> None:
    from localforge_ollama.config import parse as parse_ollama
    from localforge_openai.config import parse as parse_openai

    from localforge import config

    settings = config.load(Path(__file__).parent.parent / "contrib" / "localforge.toml", environ={})
    assert [e.prefix for e in parse_openai(settings.section("openai")).endpoints] == ["openai/", ""]
    assert len(parse_ollama(settings.section("ollama")).upstreams) == 2
    assert settings.models[0].name == "qwen2.5-coder:1.5b"


def test_thinking_reaches_ollama_clients_streamed_or_not(client: ollama.Client) -> None:
    ask = [{"role": "user", "content": "Are you sure?"}]
    chunks = list(client.chat("flaky/thinker", messages=ask, stream=True))
    assert "".join(c.message.thinking or "" for c in chunks) == "Let me think."
    assert "".join(c.message.content or "" for c in chunks) == "fine and dandy"
    whole = client.chat("flaky/thinker", messages=ask)
    assert whole.message.thinking == "Let me think." and whole.message.content == "fine and dandy"
    pieces = list(client.generate("flaky/thinker", "Are you sure?", stream=True))
    assert "".join(p.thinking or "" for p in pieces) == "Let me think."
    assert "".join(p.response for p in pieces) == "fine and dandy"
    answer = client.generate("flaky/thinker", "Are you sure?")
    assert answer.thinking == "Let me think." and answer.response == "fine and dandy"


def test_line_separators_in_an_answer_reach_every_client_whole(front: RunningServer, client: ollama.Client) -> None:
    """U+2028, U+2029 and U+0085 are legal unescaped in JSON and split lines for httpx (so for the
    `ollama` package): the upstream writes them raw, and each client still gets one whole answer."""
    import openai

    expected = "one\u2028two\u2029three\x85four"
    ask = [{"role": "user", "content": "hi"}]
    assert "".join(c.message.content or "" for c in client.chat("flaky/separators", messages=ask, stream=True)) \
        == expected
    assert "".join(p.response for p in client.generate("flaky/separators", "hi", stream=True)) == expected
    v1 = openai.OpenAI(base_url=front.url + "/v1", api_key="unused")
    stream = v1.chat.completions.create(model="flaky/separators", messages=ask, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected
    typed = subprocess.run([sys.executable, "-m", "localforge.cli", "run", "flaky/separators", "hi"],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "OLLAMA_HOST": front.url})
    assert typed.returncode == 0, typed.stderr
    assert typed.stdout.strip() == expected.strip()

"""The OpenAI-compatible API under /v1, driven by the official `openai` SDK against real llama.cpp."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from conftest import RunningServer

QUESTION = "What is the capital of France? Answer in one sentence."
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
         "rkJggg==")
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
                   "required": ["city"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The time in a timezone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
                   "required": ["zone"], "additionalProperties": False}}}


@pytest.fixture
def oai(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120) as c:
        yield c


def ask(question: str = QUESTION) -> list[Any]:
    return [{"role": "user", "content": question}]


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


# models
def test_models_list_and_retrieve(oai: openai.OpenAI) -> None:
    models = {m.id: m for m in oai.models.list().data}
    assert {"smollm2:135m", "tiny:latest", "tiny-plain:latest"} <= set(models)
    assert all(m.object == "model" and m.owned_by == "library" and m.created > 0 for m in models.values())
    tiny = oai.models.retrieve("tiny")
    assert tiny.id == "tiny" and tiny.created == models["tiny:latest"].created


def test_retrieving_an_unknown_model_is_a_404_in_openai_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        oai.models.retrieve("no-such-model")
    assert "no-such-model" in err.value.message
    assert err.value.code == "model_not_found" and err.value.type == "not_found_error"


# chat completions
def test_chat_answers_with_the_openai_shape_and_pipeline_headers(oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="smollm2:135m", messages=ask(), temperature=0, max_tokens=40)
    reply = raw.parse()
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.id.startswith("chatcmpl-") and reply.object == "chat.completion"
    assert reply.model == "smollm2:135m" and reply.system_fingerprint and reply.created > 0
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.role == "assistant"
    assert reply.usage and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert raw.headers["x-localforge-model"] == "smollm2:135m"
    assert raw.headers["x-localforge-request-id"] in reply.id


def test_chat_stream_matches_the_whole_answer_and_ends_with_usage(oai: openai.OpenAI) -> None:
    whole = oai.chat.completions.create(model="smollm2:135m", messages=ask(), temperature=0, max_tokens=40)
    # the same question as content parts: text parts make the same prompt as a plain string
    parts = [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
    chunks = list(oai.chat.completions.create(
        model="smollm2:135m", messages=parts, temperature=0, max_tokens=40, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True}))
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and "Paris" in text
    finish, usage = chunks[-2], chunks[-1]
    assert finish.choices[0].finish_reason == "stop" and finish.choices[0].delta.content is None
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    assert usage.choices == [] and usage.usage and whole.usage
    assert usage.usage.prompt_tokens == whole.usage.prompt_tokens


def test_stream_is_server_sent_events_ending_with_done(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/chat/completions", json={
            "model": "tiny", "messages": ask("hi"), "max_tokens": 3, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-1])
    assert "usage" not in json.loads(events[-2][6:]) or json.loads(events[-2][6:])["usage"] is None


def test_max_tokens_and_stop_bound_the_answer(oai: openai.OpenAI) -> None:
    short = oai.chat.completions.create(model="smollm2:135m", messages=ask(), temperature=0,
                                        max_completion_tokens=2)
    assert short.choices[0].finish_reason == "length" and short.usage
    assert short.usage.completion_tokens == 2
    stopped = oai.chat.completions.create(model="smollm2:135m", messages=ask(), temperature=0,
                                          max_tokens=40, stop="Paris")
    assert "Paris" not in (stopped.choices[0].message.content or "")
    assert stopped.choices[0].finish_reason == "stop"


# structured output
def json_prefix_completions(text: str) -> list[str]:
    """Ways to complete `text` as JSON if it is the start of a JSON document (some may fail)."""
    closers: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]" and closers:
            closers.pop()
    tail = ('n"' if escaped else '"') if in_string else ""
    close = "".join(reversed(closers))
    middles = ["", "null", ":null", '"k":null', "0", "e", "ue", "rue", "lse", "alse", "se", "ull", "ll", "l"]
    return [text + tail + m + close for m in middles]


def is_json_start(text: str) -> bool:
    for candidate in json_prefix_completions(text):
        try:
            json.loads(candidate)
        except ValueError:
            continue
        return True
    return False


def test_json_object_response_format_gives_json(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="smollm2:135m", temperature=0, max_tokens=200, response_format={"type": "json_object"},
        messages=ask('Give the capital of France as a JSON object with the key "capital".'))
    content = reply.choices[0].message.content or ""
    # the grammar holds every token to JSON; how long the object grows depends on the CPU's
    # kernels, so an answer cut off by max_tokens must still be the start of a JSON object
    assert content.lstrip().startswith("{")
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)
    else:
        assert reply.choices[0].finish_reason == "length" and is_json_start(content)


def test_json_schema_response_format_follows_the_schema(oai: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    reply = oai.chat.completions.create(
        model="smollm2:135m", temperature=0, max_tokens=60, messages=ask("Describe a person as JSON."),
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    data = json.loads(reply.choices[0].message.content or "")
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


# tools
@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_time"}}])
def test_forced_tool_call_has_json_string_arguments(oai: openai.OpenAI, choice: Any) -> None:
    reply = oai.chat.completions.create(model="tiny-plain", messages=ask("What time is it?"),
                                        tools=[WEATHER, TIME], tool_choice=choice, max_tokens=120,
                                        seed=4)
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls" and message.content is None
    assert message.tool_calls and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function" and call.id
    assert isinstance(call.function.arguments, str)
    arguments = json.loads(call.function.arguments)
    if isinstance(choice, dict):
        assert call.function.name == "get_time" and arguments["zone"] in ("UTC", "CET")
    elif call.function.name == "get_weather":
        assert arguments["city"] in ("Paris", "Rome")
    else:
        assert call.function.name == "get_time" and arguments["zone"] in ("UTC", "CET")


def test_forced_tool_call_streams_as_a_tool_call_delta(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(
        model="tiny-plain", messages=ask("Weather?"), tools=[WEATHER], max_tokens=120, stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].id
    assert calls[0].function and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments or "")["city"] in ("Paris", "Rome")
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_drops_the_tools(oai: openai.OpenAI) -> None:
    def prompt_tokens(**tools: Any) -> int:
        reply = oai.chat.completions.create(model="tiny-plain", messages=ask(), max_tokens=1, **tools)
        assert reply.usage and reply.choices[0].message.tool_calls is None
        return reply.usage.prompt_tokens

    # offered tools are described in the prompt; "none" must leave them out entirely
    plain = prompt_tokens()
    assert prompt_tokens(tools=[WEATHER], tool_choice="none") == plain
    assert prompt_tokens(tools=[WEATHER], tool_choice="auto") > plain


def test_tool_history_with_string_arguments_is_accepted(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="tiny-plain", max_tokens=4, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"}])
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")


# text completions
def test_completion_answers_and_streams(oai: openai.OpenAI) -> None:
    reply = oai.completions.create(model="smollm2:135m", prompt=QUESTION, temperature=0, max_tokens=20)
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert "Paris" in reply.choices[0].text and reply.choices[0].finish_reason == "stop"
    assert reply.usage and reply.usage.completion_tokens > 0
    chunks = list(oai.completions.create(model="smollm2:135m", prompt=[QUESTION], temperature=0,
                                         max_tokens=20, stream=True,
                                         stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reply.choices[0].text
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-1].usage


def test_completion_echo_puts_the_prompt_first(oai: openai.OpenAI) -> None:
    whole = oai.completions.create(model="tiny", prompt="the capital", max_tokens=3, seed=1, echo=True)
    assert whole.choices[0].text.startswith("the capital")
    streamed = oai.completions.create(model="tiny", prompt="the capital", max_tokens=3, seed=1,
                                      echo=True, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == whole.choices[0].text


def test_completion_suffix_fills_in_the_middle(oai: openai.OpenAI) -> None:
    reply = oai.completions.create(model="tiny-fim", prompt="def add(a, b):", suffix="    return c",
                                   max_tokens=4)
    assert reply.choices[0].finish_reason in ("stop", "length")


# embeddings
def test_embeddings_float_and_base64_agree(oai: openai.OpenAI) -> None:
    texts = ["hello there", "the capital of France"]
    as_float = oai.embeddings.create(model="tiny", input=texts, encoding_format="float")
    as_base64 = oai.embeddings.create(model="tiny", input=texts)  # the SDK asks for base64 and decodes
    assert [d.index for d in as_float.data] == [0, 1] and as_float.model == "tiny"
    assert as_float.usage.prompt_tokens > 0 and as_float.usage.total_tokens == as_float.usage.prompt_tokens
    for a, b in zip(as_float.data, as_base64.data, strict=True):
        assert len(a.embedding) == 32 and math.isclose(norm(a.embedding), 1.0, rel_tol=1e-4)
        assert b.embedding == pytest.approx(a.embedding, rel=1e-5, abs=1e-6)


def test_embeddings_dimensions_truncate_and_renormalise(oai: openai.OpenAI) -> None:
    single = oai.embeddings.create(model="tiny", input="abc", dimensions=8, encoding_format="float")
    vector = single.data[0].embedding
    assert len(single.data) == 1 and len(vector) == 8
    assert math.isclose(norm(vector), 1.0, rel_tol=1e-4)


# errors in OpenAI's shape
def test_empty_messages_is_a_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="tiny", messages=[])
    assert "at least one message" in err.value.message and err.value.type == "invalid_request_error"


def test_unknown_model_is_a_404(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="no-such-model", messages=ask())
    assert "no-such-model" in err.value.message and err.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model="no-such-model", input="x")


def test_unsupported_capabilities_are_a_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="tiny", max_tokens=2, messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PIXEL}}]}])
    assert "images" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        oai.completions.create(model="tiny", prompt="x", suffix="y")
    assert "insert" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="tiny", messages=ask(), reasoning_effort="high")
    assert "thinking" in err.value.message
    # "none" asks for no thinking, which every model can do
    assert oai.chat.completions.create(model="tiny", messages=ask(), reasoning_effort="none", max_tokens=1)


BAD_REQUESTS = [
    ("/v1/chat/completions", {"messages": ask()}, "model is required"),
    ("/v1/chat/completions", {"model": "tiny", "messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"model": "tiny", "messages": ask(), "temperature": "hot"}, "temperature"),
    ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}, "data: URL"),
    ("/v1/chat/completions", {"model": "tiny", "messages": ask(), "n": 2}, "n must be 1"),
    ("/v1/chat/completions", {"model": "tiny", "messages": ask(), "tools": [WEATHER],
                              "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "nope"),
    ("/v1/chat/completions", {"model": "tiny", "messages": ask(), "tool_choice": "required"}, "tool"),
    ("/v1/chat/completions", {"model": "tiny", "messages": ask(),
                              "response_format": {"type": "xml"}}, "response_format"),
    ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}, "role"),
    ("/v1/chat/completions", {"model": "tiny", "messages": ask(), "reasoning_effort": "max"}, "reasoning_effort"),
    ("/v1/completions", {"model": "tiny", "prompt": [1, 2, 3]}, "token arrays"),
    ("/v1/embeddings", {"model": "tiny", "input": [[1, 2, 3]]}, "token arrays"),
    ("/v1/embeddings", {"model": "tiny", "input": []}, "empty"),
    ("/v1/embeddings", {"model": "tiny", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ("/v1/embeddings", {"model": "tiny", "input": "x", "dimensions": 0}, "dimensions"),
    ("/v1/models/..%2Fetc", None, "invalid model name"),
]


@pytest.mark.parametrize(("path", "payload", "needle"), BAD_REQUESTS)
def test_bad_requests_are_a_400_naming_the_problem(http: httpx.Client, path: str, payload: Any,
                                                   needle: str) -> None:
    response = http.post(path, json=payload) if payload is not None else http.get(path)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_malformed_json_and_unknown_routes_keep_openai_shape(http: httpx.Client) -> None:
    malformed = http.post("/v1/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]["message"]
    unknown = http.post("/v1/no/such/route", json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] is None
    wrong_method = http.post("/v1/models", json={})
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_a_stream_that_fails_before_its_first_chunk_keeps_its_status(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="tiny", messages=ask("the " * 20000), max_tokens=2, stream=True)
    assert "context" in err.value.message

"""Tool calls as Copilot, Continue and the ollama client use them: arguments are always an object."""

from __future__ import annotations

import httpx
import ollama

from localforge.gguf import prompts


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
      city: The name of the city
    """
    return "sunny"


CALL_SCHEMA = {
    "type": "object",
    "properties": {"name": {"const": "get_weather"},
                   "arguments": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}},
    "required": ["name", "arguments"],
}
QUESTION = [{"role": "user", "content": "What is the weather in Tokyo?"}]


def test_a_tool_call_comes_back_with_object_arguments(client: ollama.Client) -> None:
    # SmolLM2-135M rarely calls tools unprompted; structured output makes it answer with a call
    reply = client.chat("smollm2:135m", messages=QUESTION, tools=[get_weather], format=CALL_SCHEMA,
                        options={"temperature": 0, "num_predict": 60})
    calls = reply.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Tokyo"}
    assert reply.message.content == ""


def test_a_streamed_tool_call_arrives_whole_in_one_chunk(client: ollama.Client) -> None:
    chunks = list(client.chat("smollm2:135m", messages=QUESTION, tools=[get_weather], stream=True,
                              format=CALL_SCHEMA, options={"temperature": 0, "num_predict": 60}))
    with_calls = [c for c in chunks if c.message.tool_calls]
    assert len(with_calls) == 1 and chunks[-1].done
    call = with_calls[0].message.tool_calls[0]  # type: ignore[index]
    assert isinstance(call.function.arguments, dict)


def test_history_with_tool_results_is_accepted_with_string_or_object_arguments(http: httpx.Client) -> None:
    for arguments in ({"city": "Tokyo"}, '{"city": "Tokyo"}'):
        messages = [*QUESTION,
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"function": {"name": "get_weather", "arguments": arguments}}]},
                    {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"}]
        response = http.post("/api/chat", json={"model": "tiny", "messages": messages, "stream": False,
                                                "options": {"num_predict": 2}})
        assert response.status_code == 200, response.text


def test_tools_are_advertised_for_chat_models(client: ollama.Client) -> None:
    # Copilot lists a model only when /api/show's capabilities include "tools"
    assert "tools" in (client.show("smollm2:135m").capabilities or [])


def test_hermes_style_and_bare_json_calls_are_parsed() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    text, calls = prompts.parse_tool_calls(
        'Sure.<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>', tools)
    assert text == "Sure." and calls[0].arguments == {"city": "Oslo"}
    text, calls = prompts.parse_tool_calls('{"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}', tools)
    assert text == "" and calls[0].arguments == {"city": "Rome"}
    text, calls = prompts.parse_tool_calls('{"name": "unknown_tool", "arguments": {}}', tools)
    assert calls == [] and "unknown_tool" in text

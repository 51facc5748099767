"""Token estimates and conversation features."""

from __future__ import annotations

from localforge.inference import Inference, Message, ToolCall
from localforge.profile.base import Profile
from localforge.profile.conversation import ConversationProfiler, code_blocks
from localforge.profile.tokens import PER_IMAGE, TokenProfiler, count


def test_token_estimate_is_close_to_a_real_tokenizer_and_grows_with_text() -> None:
    # SmolLM2's tokenizer: "The capital of France is Paris." is 7 tokens
    assert 6 <= count("The capital of France is Paris.") <= 9
    assert count("") == 0
    assert count("word " * 1000) == 1000
    assert count("internationalization") > count("nation")
    assert count("日本語のテキスト") >= 4


def test_request_tokens_count_every_part_of_the_request() -> None:
    short = Inference(model="auto", kind="chat", messages=[Message("user", "hi")])
    long = Inference(model="auto", kind="chat", system="be terse", tools=[{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object"}}}], messages=[
        Message("user", "hi", images=[b"png"]),
        Message("assistant", "", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Message("tool", "sunny")])
    a, b = Profile(), Profile()
    TokenProfiler().profile(short, a)
    TokenProfiler().profile(long, b)
    assert a.tokens > 0 and b.tokens > a.tokens + PER_IMAGE


def test_conversation_features() -> None:
    request = Inference(model="auto", kind="chat", format={"type": "object"}, tools=[{"type": "function"}],
                        messages=[Message("system", "You are a careful assistant."),
                                  Message("user", "Fix this:\n```python\nprint(1\n```\nand this\n```\nx=\n```"),
                                  Message("assistant", "ok"), Message("user", "thanks", images=[b"a", b"b"])])
    profile = Profile()
    ConversationProfiler().profile(request, profile)
    features = profile.features
    assert features["turns"] == 2 and features["messages"] == 4
    assert features["code_blocks"] == 2
    assert features["format"] == "schema" and features["tools"] == 1 and features["images"] == 2
    assert features["system_tokens"] == count("You are a careful assistant.")


def test_generate_requests_and_formats() -> None:
    profile = Profile()
    ConversationProfiler().profile(Inference(model="auto", kind="generate", prompt="def f(", suffix="return x",
                                             format="json"), profile)
    assert profile.features["turns"] == 1 and profile.features["format"] == "json"
    assert profile.features["suffix"] is True and profile.features["code_blocks"] == 0
    assert code_blocks("```\nunclosed") == 1 and code_blocks("no code") == 0

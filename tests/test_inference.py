"""Generate, chat and embed through the official ollama client, against real llama.cpp."""

from __future__ import annotations

import json
import math
import time

import httpx
import ollama
import pytest

QUESTION = "What is the capital of France? Answer in one sentence."


def test_smollm2_knows_the_capital_of_france(client: ollama.Client) -> None:
    reply = client.chat("smollm2:135m", messages=[{"role": "user", "content": QUESTION}],
                        options={"temperature": 0, "num_predict": 40})
    assert "Paris" in reply.message.content
    assert reply.done_reason == "stop"
    assert reply.eval_count and reply.prompt_eval_count and reply.total_duration


def test_chat_streams_tokens_then_a_final_chunk_with_timings(client: ollama.Client) -> None:
    chunks = list(client.chat("tiny", messages=[{"role": "user", "content": "hi"}], stream=True,
                              options={"num_predict": 8, "seed": 1}))
    assert len(chunks) >= 2
    assert all(not c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done and final.done_reason in ("stop", "length")
    assert final.message.content == ""
    assert final.eval_duration and final.prompt_eval_duration and final.total_duration


def test_generate_stream_and_not_agree_with_a_fixed_seed(client: ollama.Client) -> None:
    options = {"num_predict": 6, "seed": 7, "temperature": 0}
    whole = client.generate("tiny", "the capital of", options=options)
    streamed = "".join(c.response for c in client.generate("tiny", "the capital of", options=options, stream=True))
    assert whole.response == streamed
    assert whole.done_reason in ("stop", "length")
    assert whole.eval_count is not None and whole.eval_count <= 6
    assert whole.context  # token ids, as Ollama returns for non-raw generate


def test_num_predict_bounds_the_answer(http: httpx.Client) -> None:
    body = http.post("/api/generate", json={"model": "tiny-plain", "prompt": "a", "stream": False,
                                            "options": {"num_predict": 3, "seed": 5}}).json()
    assert body["eval_count"] <= 3
    if body["done_reason"] == "length":
        assert body["eval_count"] == 3


def test_ndjson_lines_are_never_blank(http: httpx.Client) -> None:
    with http.stream("POST", "/api/generate", json={"model": "tiny", "prompt": "x",
                                                    "options": {"num_predict": 4}}) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = list(response.iter_lines())
    assert lines and all(line.strip() for line in lines)
    assert json.loads(lines[-1])["done"] is True
    assert "request_id" in json.loads(lines[-1])


def test_structured_output_follows_the_schema(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    reply = client.chat("smollm2:135m", format=schema, options={"temperature": 0, "num_predict": 60},
                        messages=[{"role": "user", "content": "Describe a person as JSON."}])
    data = json.loads(reply.message.content)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_format_json_gives_json_even_from_noise(client: ollama.Client) -> None:
    reply = client.generate("tiny", "x", format="json", options={"num_predict": 30, "seed": 3})
    if reply.done_reason == "stop":
        json.loads(reply.response)
    else:
        assert reply.response.lstrip().startswith(("{", "["))


def test_fill_in_the_middle_with_suffix(client: ollama.Client) -> None:
    reply = client.generate("tiny-fim", "def add(a, b):", suffix="    return c", options={"num_predict": 4})
    assert reply.done


def test_suffix_on_a_model_without_fim_is_a_clear_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.generate("tiny", "x", suffix="y")
    assert err.value.status_code == 400 and "insert" in err.value.error


def test_images_on_a_text_only_model_are_refused(http: httpx.Client) -> None:
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    for image in (pixel, "data:image/png;base64," + pixel):
        response = http.post("/api/chat", json={"model": "tiny", "stream": False, "messages": [
            {"role": "user", "content": "what is this?", "images": [image]}]})
        assert response.status_code == 400
        assert "images" in response.json()["error"]


def test_load_and_unload_forms(client: ollama.Client, http: httpx.Client) -> None:
    loaded = http.post("/api/generate", json={"model": "tiny-plain"}).json()
    assert loaded["done"] and loaded["done_reason"] == "load"
    assert "tiny-plain:latest" in [m.model for m in client.ps().models]
    unloaded = http.post("/api/chat", json={"model": "tiny-plain", "messages": [], "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload"
    assert "tiny-plain:latest" not in [m.model for m in client.ps().models]


def test_ps_reports_size_context_and_expiry(client: ollama.Client) -> None:
    client.generate("tiny", "x", options={"num_predict": 1}, keep_alive="10m")
    running = {m.model: m for m in client.ps().models}
    tiny = running["tiny:latest"]
    assert tiny.size and tiny.context_length and tiny.expires_at
    assert tiny.size_vram == 0  # CPU build


def test_keep_alive_forever_and_zero(client: ollama.Client) -> None:
    client.generate("tiny", "x", options={"num_predict": 1}, keep_alive=-1)
    tiny = {m.model: m for m in client.ps().models}["tiny:latest"]
    assert tiny.expires_at and tiny.expires_at.year > 2300
    client.generate("tiny", "x", options={"num_predict": 1}, keep_alive=0)
    # as in Ollama, the unload follows the answer rather than preceding it
    deadline = time.monotonic() + 5
    while "tiny:latest" in [m.model for m in client.ps().models] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "tiny:latest" not in [m.model for m in client.ps().models]


def test_embed_returns_normalised_vectors(client: ollama.Client) -> None:
    result = client.embed("tiny", input=["hello there", "the capital of France"])
    assert len(result.embeddings) == 2
    for vector in result.embeddings:
        assert len(vector) == 32
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-4)
    single = client.embed("tiny", input="hello there")
    assert single.embeddings[0] == pytest.approx(result.embeddings[0], rel=1e-4)


def test_embed_dimensions_truncate_and_renormalise(http: httpx.Client) -> None:
    vector = http.post("/api/embed", json={"model": "tiny", "input": "abc", "dimensions": 8}).json()["embeddings"][0]
    assert len(vector) == 8
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-4)


def test_legacy_embeddings(client: ollama.Client, http: httpx.Client) -> None:
    assert len(client.embeddings("tiny", prompt="hello").embedding) == 32
    assert http.post("/api/embeddings", json={"model": "tiny", "prompt": ""}).json() == {"embedding": []}

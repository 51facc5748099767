"""Continuous batching: several clients of one model share one decode loop in its runner.

A real server with `parallel = 4`, the real SmolLM2 where answers must make sense, and a tiny
large-vocabulary model where they only need to be long.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from conftest import RunningServer, smollm2_config, start_server, stop_server
from tiny_gguf import write_tiny_llama

QUESTIONS = ["Name three colours.", "What is the capital of Italy?", "Write a haiku about rain.",
             "Explain what a noun is."]


@pytest.fixture(scope="module")
def batching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("batching-models")
    # a large vocabulary makes the end-of-text token rare: answers run to num_predict
    write_tiny_llama(folder / "long.gguf", n_embd=256, n_layers=2, seed=31, extra_vocab=8000)
    server = start_server(tmp_path_factory.mktemp("batching"), folder, "parallel = 4\n" + smollm2_config())
    yield server
    stop_server(server)


def chat(server: RunningServer, question: str, shape: object = None, **options: object) -> dict[str, object]:
    reply = httpx.post(server.url + "/api/chat", timeout=300, json={
        "model": "smollm2:135m", "stream": False, "messages": [{"role": "user", "content": question}],
        "options": {"temperature": 0, "seed": 42, "num_predict": 24, **options},
        **({"format": shape} if shape else {})})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def concurrently(*calls: object) -> list[object]:
    results: list[object] = [None] * len(calls)

    def run(i: int, call: object) -> None:
        results[i] = call()  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return results


def test_concurrent_greedy_answers_are_the_answers_given_alone(batching: RunningServer) -> None:
    alone = [chat(batching, q)["message"] for q in QUESTIONS]  # type: ignore[index]
    together = concurrently(*(lambda q=q: chat(batching, q)["message"] for q in QUESTIONS))
    assert together == alone
    assert len({m["content"] for m in alone}) == 4  # type: ignore[index]


def test_grammars_and_stop_words_mix_in_one_batch(batching: RunningServer) -> None:
    story = "Tell me a story about the sea."
    told = str(chat(batching, story, num_predict=40)["message"]["content"])  # type: ignore[index]
    stop = told.split()[len(told.split()) // 2]  # a word from the middle of its own answer
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    shaped, stopped, plain = concurrently(
        lambda: chat(batching, "The capital of France, as JSON.", schema, num_predict=60),
        lambda: chat(batching, story, num_predict=40, stop=[stop]),
        lambda: chat(batching, "Tell me about the sea.", num_predict=20))
    content = shaped["message"]["content"]  # type: ignore[index]
    assert content.lstrip().startswith("{")
    if shaped["done_reason"] == "stop":  # type: ignore[index]
        assert "city" in json.loads(content)
    assert stopped["done_reason"] == "stop"  # type: ignore[index]
    assert stopped["message"]["content"] == told[:told.index(stop)]  # type: ignore[index]
    assert plain["eval_count"] == 20 and plain["done_reason"] == "length"  # type: ignore[index]


def test_a_client_that_leaves_mid_batch_frees_its_slot(batching: RunningServer) -> None:
    body = {"model": "long", "prompt": "the", "options": {"num_predict": 1500, "temperature": 1, "seed": 3}}
    finished: list[dict[str, object]] = []

    def stay() -> None:
        with httpx.stream("POST", batching.url + "/api/generate", json=body, timeout=300) as response:
            lines = [json.loads(line) for line in response.iter_lines() if line]
            finished.append(lines[-1])

    stayers = [threading.Thread(target=stay) for _ in range(3)]
    for thread in stayers:
        thread.start()
    with httpx.stream("POST", batching.url + "/api/generate", json=body, timeout=300) as leaving:
        for i, _ in enumerate(leaving.iter_lines()):
            if i == 5:
                break
    # the freed slot serves a newcomer at once, while the others are still answering
    started = time.monotonic()
    newcomer = httpx.post(batching.url + "/api/generate", timeout=300, json={
        "model": "long", "prompt": "a", "stream": False, "options": {"num_predict": 3}})
    newcomer_s = time.monotonic() - started
    assert newcomer.status_code == 200 and newcomer.json()["eval_count"] == 3
    assert not finished, f"the newcomer waited {newcomer_s:.1f} s for a whole answer"
    for thread in stayers:
        thread.join(300)
    assert [f["done"] for f in finished] == [True] * 3
    assert all(f["eval_count"] == 1500 for f in finished)


def test_a_prompt_longer_than_a_slot_is_refused_with_the_limit(batching: RunningServer) -> None:
    reply = httpx.post(batching.url + "/api/generate", timeout=120, json={
        "model": "smollm2:135m", "prompt": "word " * 300, "options": {"num_ctx": 128}})
    assert reply.status_code == 400
    assert "more than the model's context of 128" in reply.json()["error"]


def test_the_next_turn_reuses_the_cached_prompt(batching: RunningServer) -> None:
    first = [{"role": "user", "content": "My name is Ada. Please remember it."}]
    one = httpx.post(batching.url + "/api/chat", timeout=120, json={
        "model": "smollm2:135m", "stream": False, "messages": first,
        "options": {"temperature": 0, "num_predict": 16}}).json()
    turn = [*first, one["message"], {"role": "user", "content": "What is my name?"}]
    client = openai.OpenAI(base_url=batching.url + "/v1", api_key="unused")
    two = client.chat.completions.create(model="smollm2:135m", messages=turn, temperature=0, max_tokens=8)
    assert two.usage is not None and two.usage.prompt_tokens_details is not None
    cached = two.usage.prompt_tokens_details.cached_tokens or 0
    assert cached >= one["prompt_eval_count"]  # the whole first turn came from the cache
    assert two.usage.prompt_tokens > cached


def ask(server: RunningServer, messages: list[dict[str, str]], **options: object) -> dict[str, object]:
    reply = httpx.post(server.url + "/api/chat", timeout=300, json={
        "model": "smollm2:135m", "stream": False, "messages": messages,
        "options": {"temperature": 0, "num_predict": 16, **options}})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def unload(server: RunningServer) -> None:
    httpx.post(server.url + "/api/generate", timeout=60, json={"model": "smollm2:135m", "keep_alive": 0})


FILLER = ("The valley was quiet that morning, and the river ran slow and green under the old stone bridge. "
          "Farmers walked their horses along the road while the bells of the church rang across the fields. ")


def test_a_prompt_longer_than_a_batch_is_read_whole(batching: RunningServer) -> None:
    """Issue 20: only the last 512-token chunk of a prompt used to be evaluated."""
    question = [{"role": "user", "content": "Remember this: the password is TANGERINE. " + FILLER * 17
                 + "What is the password?"}]
    chunked = ask(batching, question)
    whole = ask(batching, question, num_batch=4096)
    assert 650 < int(chunked["prompt_eval_count"]) < 800  # type: ignore[call-overload]
    assert chunked["message"] == whole["message"]
    assert "TANGERINE" in str(chunked["message"]["content"])  # type: ignore[index]


def test_a_long_next_turn_is_answered_as_the_conversation_sent_cold(batching: RunningServer) -> None:
    unload(batching)
    first = [{"role": "user", "content": "My name is Ada. Please remember it."}]
    one = ask(batching, first)
    turn = [*first, one["message"], {"role": "user", "content": FILLER * 22 + "What is my name?"}]
    warm = ask(batching, turn)
    unload(batching)
    cold = ask(batching, turn)
    assert 850 < int(cold["prompt_eval_count"]) < 1000  # type: ignore[call-overload]
    assert int(warm["prompt_eval_count"]) < int(cold["prompt_eval_count"])  # type: ignore[call-overload]
    assert warm["message"] == cold["message"]


def test_presence_penalty_changes_a_repetitive_answer_the_same_way_on_fresh_runners(
        batching: RunningServer) -> None:
    """Issue 20: the penalties sampler was called with the wrong C signature (undefined behaviour)."""
    repeat = [{"role": "user", "content": "Repeat the word 'apple' thirty times."}]
    plain = ask(batching, repeat, num_predict=30)
    penalised = []
    for _ in range(3):
        unload(batching)
        penalised.append(ask(batching, repeat, num_predict=30, presence_penalty=2)["message"])
    assert penalised[0] != plain["message"]
    assert penalised == [penalised[0]] * 3

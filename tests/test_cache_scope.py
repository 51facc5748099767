"""Nothing LocalForge keeps is a side channel between API keys. The prompt cache: a prefix cached
for one key is evaluated afresh for another, so `cached_tokens` and `prompt_eval_count` cannot
spell out another key's prompt digit by digit; within one key the cache works as before. The
routing memory: a key's routes, the evidence `/api/route` shows and the "asked again" signal come
from its own requests only, and a kept prompt shows on the dashboard only to the key that sent it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
from conftest import RunningServer, start_server, stop_server
from tiny_gguf import write_tiny_llama

from localforge.server.auth import key_scope

KEY_A, KEY_B, KEY_C, KEY_D = (f"key-{who}-{uuid.uuid4().hex}" for who in "abcd")
SECRET = "Remember my PIN 4821 and my locker code 7730 for the trip to Lisbon next week, please."


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("scope-models")
    write_tiny_llama(folder / "tiny.gguf")
    keys = f'api_keys = ["{KEY_A}", "{KEY_B}", "{KEY_C}", "{KEY_D}"]\nparallel = 2\n[router]\nstore_prompts = true\n'
    server = start_server(tmp_path_factory.mktemp("scope"), folder, keys, log_level="debug")
    yield server
    stop_server(server)


def cached(server: RunningServer, key: str, text: str) -> tuple[int, int]:
    """(prompt tokens, cached tokens) of a one-token /v1 answer."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="tiny", max_tokens=1, temperature=0,
                                           messages=[{"role": "user", "content": text}])
    assert reply.usage is not None
    details = reply.usage.prompt_tokens_details
    return reply.usage.prompt_tokens, (details.cached_tokens or 0) if details else 0


def evaluated(server: RunningServer, key: str, text: str) -> int:
    """Ollama's prompt_eval_count: the prompt tokens evaluated, without those the cache served."""
    reply = httpx.post(server.url + "/api/chat", headers={"Authorization": f"Bearer {key}"}, timeout=120,
                       json={"model": "tiny", "stream": False, "options": {"num_predict": 1, "temperature": 0},
                             "messages": [{"role": "user", "content": text}]})
    assert reply.status_code == 200, reply.text
    return int(reply.json()["prompt_eval_count"])


def test_another_key_gets_nothing_from_the_cache(keyed: RunningServer) -> None:
    whole, first = cached(keyed, KEY_A, SECRET)
    assert first == 0
    again = cached(keyed, KEY_A, SECRET)[1]
    assert again >= whole - 1  # the same key: all but the token evaluated for its logits
    # other keys guess A's prompt, whole or by its start (each its first request, so no cache of
    # its own can serve it): the cells hold only A's tokens, and none is reused
    assert cached(keyed, KEY_B, SECRET) == (whole, 0)
    assert cached(keyed, KEY_B, SECRET)[1] >= whole - 1  # then B's own prompt is cached for B
    assert cached(keyed, KEY_C, "Remember my PIN 4")[1] == 0
    assert evaluated(keyed, KEY_D, SECRET) == whole  # the native API: the whole prompt evaluated


def test_the_scope_is_a_hash_and_the_key_never_reaches_the_runner(keyed: RunningServer) -> None:
    assert key_scope(KEY_A) != key_scope(KEY_B) and len(key_scope(KEY_A)) == 16
    assert KEY_A not in key_scope(KEY_A) and key_scope("") == ""
    log = keyed.log()  # at debug level
    assert KEY_A not in log and KEY_B not in log


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_routing_memory_answers_a_key_with_its_own_requests_only(keyed: RunningServer) -> None:
    prompt = f"Which train goes from Porto to Lisbon at dawn, ticket {uuid.uuid4().hex[:6]}?"
    asked = httpx.post(keyed.url + "/api/chat", headers=as_key(KEY_A), timeout=120, json={
        "model": "auto", "stream": False, "options": {"num_predict": 2},
        "messages": [{"role": "user", "content": prompt}]})
    assert asked.status_code == 200, asked.text
    request_id = asked.headers["x-localforge-request-id"]
    thumbs = httpx.post(keyed.url + "/api/feedback", headers=as_key(KEY_A), timeout=30,
                        json={"request_id": request_id, "thumbs": "down"})
    assert thumbs.status_code == 200, thumbs.text

    def evidence(key: str) -> float:
        dry = httpx.post(keyed.url + "/api/route", headers=as_key(key), timeout=60,
                         json={"model": "auto", "prompt": prompt})
        assert dry.status_code == 200, dry.text
        return sum(c["evidence"] for c in dry.json()["candidates"])

    assert evidence(KEY_A) > 0.5  # A's own outcome is a near neighbour
    assert evidence(KEY_B) == 0.0  # B cannot tell that anyone asked it

    # B asks the same prompt: for A's route that is no "asked again" outcome
    again = httpx.post(keyed.url + "/api/chat", headers=as_key(KEY_B), timeout=120, json={
        "model": "auto", "stream": False, "options": {"num_predict": 2},
        "messages": [{"role": "user", "content": prompt}]})
    assert again.status_code == 200, again.text
    detail = httpx.get(f"{keyed.url}/ui/api/requests/{request_id}", headers=as_key(KEY_A), timeout=30).json()
    assert [o["kind"] for o in detail["route"]["outcomes"]] == ["feedback"]
    assert detail["prompt"] == prompt  # store_prompts: shown to the key that sent it
    seen_by_b = httpx.get(f"{keyed.url}/ui/api/requests/{request_id}", headers=as_key(KEY_B), timeout=30).json()
    assert seen_by_b["prompt"] is None and prompt not in str(seen_by_b)

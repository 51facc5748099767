"""The prompt cache is no side channel between API keys: a prefix cached for one key is evaluated
afresh for another, so `cached_tokens` and `prompt_eval_count` cannot spell out another key's
prompt digit by digit. Within one key the cache works as before."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

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
    keys = f'api_keys = ["{KEY_A}", "{KEY_B}", "{KEY_C}", "{KEY_D}"]\nparallel = 2\n'
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

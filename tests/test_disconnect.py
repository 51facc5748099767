"""A client that goes away stops the generation: the model is free for the next request at once."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

import httpx
import pytest
from conftest import RunningServer


def test_closing_the_stream_stops_generation(server: RunningServer) -> None:
    body = {"model": "smollm2:135m", "prompt": "Write a very long story about a dragon.",
            "options": {"num_predict": 4000, "temperature": 0.8}}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        with client.stream("POST", "/api/generate", json=body) as response:
            request_id = response.headers["x-localforge-request-id"]
            lines = response.iter_lines()
            for _ in range(3):
                next(lines)
        # had generation continued, 4000 tokens would hold the model for over a minute
        started = time.monotonic()
        quick = client.post("/api/generate", json={"model": "smollm2:135m", "prompt": "Hi", "stream": False,
                                                   "options": {"num_predict": 2}})
        assert quick.status_code == 200
        assert time.monotonic() - started < 15
    conn = sqlite3.connect(server.data_dir / "localforge.db")
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        row = conn.execute("select status, eval_tokens from requests where id = ?", (request_id,)).fetchone()
        if row:
            status = row[0]
            break
        time.sleep(0.1)
    assert status == "canceled"


def test_a_non_streamed_request_stops_when_its_client_goes(server: RunningServer) -> None:
    """`stream: false` has no stream to close: the server must notice the client itself. The
    request is recorded as canceled, after a few tokens, long before 4000 could be generated."""
    # seeded: unseeded, some stories end within the client's 3 s (381 tokens in 3.6 s was seen),
    # and the client then gets its answer instead of hanging up; seed 3 tells 1,050 tokens (11 s)
    body = {"model": "smollm2:135m", "prompt": "Write a very long story about a dragon.", "stream": False,
            "options": {"num_predict": 4000, "temperature": 0.8, "seed": 3}}
    before = time.time()
    with httpx.Client(base_url=server.url, timeout=3) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/api/generate", json=body)  # the client gives up after 3 s and hangs up
    conn = sqlite3.connect(server.data_dir / "localforge.db")
    deadline, row = time.monotonic() + 15, None
    while time.monotonic() < deadline and row is None:
        row = conn.execute("select status, eval_tokens, total_ns from requests where endpoint = '/api/generate' "
                           "and created_at >= ? and status != 'ok' "
                           "order by created_at desc", (datetime.fromtimestamp(before, UTC).isoformat(),)).fetchone()
        time.sleep(0.1)
    assert row is not None, "the request is still generating for a client that has gone"
    status, _, total_ns = row
    assert status == "canceled" and total_ns < 10e9

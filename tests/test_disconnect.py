"""A client that goes away stops the generation: the model is free for the next request at once."""

from __future__ import annotations

import sqlite3
import time

import httpx
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

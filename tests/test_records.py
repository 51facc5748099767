"""Every request leaves a row in the sqlite database, committed at once, with no secrets in it."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import httpx
import ollama
from conftest import start_server


def rows(db: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("select * from requests order by created_at")]
    finally:
        conn.close()


def test_a_request_is_recorded_with_timings_and_no_prompt(tmp_path: Path, tiny_models: Path) -> None:
    running = start_server(tmp_path, tiny_models)
    try:
        client = ollama.Client(host=running.url)
        secret_prompt = "my password is hunter2-zebra"
        reply = client.generate("tiny", secret_prompt, options={"num_predict": 3})
        httpx.post(running.url + "/api/chat", json={"model": "ghost", "messages": []})
        # kill -9: nothing gets a chance to flush, so the rows must already be committed
        running.process.send_signal(signal.SIGKILL)
        running.process.wait()
    finally:
        running.process.kill()
    db = running.data_dir / "localforge.db"
    recorded = rows(db)
    assert [r["status"] for r in recorded] == ["ok", "error"]
    ok, failed = recorded
    assert ok["requested_model"] == "tiny" and ok["served_model"] == "tiny:latest"
    assert ok["backend"] == "llama.cpp" and ok["endpoint"] == "/api/generate"
    assert ok["eval_tokens"] == reply.eval_count and ok["prompt_tokens"] == reply.prompt_eval_count
    assert ok["prompt_ns"] > 0 and ok["total_ns"] > 0 and ok["client"] == "127.0.0.1"
    assert failed["error"] == "model 'ghost' not found"
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert "hunter2" not in dump


def test_the_database_uses_wal_and_records_its_migrations(tmp_path: Path, tiny_models: Path) -> None:
    running = start_server(tmp_path, tiny_models)
    running.process.terminate()
    running.process.wait()
    conn = sqlite3.connect(running.data_dir / "localforge.db")
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    applied = [r[0] for r in conn.execute("select name from _migrations")]
    assert applied[0] == "m001_create_requests"


def test_the_row_is_committed_before_done_is_sent(tmp_path: Path, tiny_models: Path) -> None:
    """Issue 15: SIGKILLed between the final chunk and the commit, 6 of 93 answers had no row."""
    import json

    running = start_server(tmp_path, tiny_models)
    try:
        for path, body in [("/api/generate", {"prompt": "hi"}),
                           ("/api/chat", {"messages": [{"role": "user", "content": "hi"}]})]:
            with httpx.stream("POST", running.url + path, timeout=60, json={
                    "model": "tiny", "options": {"num_predict": 3}, **body}) as response:
                for line in response.iter_lines():
                    chunk = json.loads(line)
                    if chunk.get("done"):
                        # the client holds the complete answer: kill the server this instant
                        running.process.send_signal(signal.SIGKILL)
                        running.process.wait()
                        break
            recorded = {r["id"]: r for r in rows(running.data_dir / "localforge.db")}
            assert chunk["request_id"] in recorded
            assert recorded[chunk["request_id"]]["eval_tokens"] == chunk["eval_count"]
            running = start_server(tmp_path, tiny_models, port=int(running.url.rsplit(":", 1)[1]))
    finally:
        running.process.kill()
        running.process.wait()

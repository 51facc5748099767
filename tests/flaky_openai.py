"""A small OpenAI-compatible server that fails on purpose, one way per model id.

    python tests/flaky_openai.py PORT

`always500` answers 500, quoting the Authorization header it got (as careless servers do);
`twice500` fails twice then answers; `ratelimited` answers 429; `dies` streams three pieces and
then kills its own process; `ok` answers "fine"; `thinker` reasons ("Let me think.") before it
answers "fine", as reasoning models do (`reasoning_content`); `separators` answers text holding
U+0085, U+2028 and U+2029, raw in its JSON as servers built on orjson or msgspec write them.
GET /hits tells how often each was asked and whether any request carried an Authorization header;
GET /requests returns every body it was sent, so a test can tell what left the machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = ["ok", "always500", "twice500", "ratelimited", "dies", "thinker", "separators"]
SEPARATED = ["one\u2028", "two\u2029three", "\x85four"]
THOUGHTS = ["Let", " me", " think."]
hits: dict[str, int] = {}
auth_seen: list[str] = []
received: list[dict[str, Any]] = []


def chunk(text: str, finish: str | None = None, thinking: str = "") -> bytes:
    delta = {"reasoning_content": thinking} if thinking else {"content": text} if text else {}
    data = {"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("flaky: " + format % args + "\n")

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})
        elif self.path == "/requests":
            self._json(200, {"requests": received})
        elif self.path == "/hits":
            self._json(200, {"hits": hits, "auth_seen": bool(auth_seen)})
        else:
            self._json(404, {"error": {"message": "no such path"}})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        received.append({"path": self.path, "body": body})
        model = body.get("model", "")
        hits[model] = hits.get(model, 0) + 1
        auth = self.headers.get("Authorization") or ""
        if auth:
            auth_seen.append(auth)
        if model == "always500" or (model == "twice500" and hits[model] <= 2):
            self._json(500, {"error": {"message": f"internal failure handling {auth}"}})
        elif model == "ratelimited":
            self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
        elif model in ("ok", "twice500", "dies", "thinker", "separators"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")  # the body ends when the connection does
            self.end_headers()
            for thought in THOUGHTS if model == "thinker" else []:
                self.wfile.write(chunk("", thinking=thought))
            for piece in SEPARATED if model == "separators" else ["fine", " and", " dandy"]:
                self.wfile.write(chunk(piece))
                self.wfile.flush()
                time.sleep(0.05)
            if model == "dies":
                os._exit(1)  # the process is gone in the middle of the answer
            self.wfile.write(chunk("", "stop") + b"data: [DONE]\n\n")
            self.close_connection = True
        else:
            self._json(404, {"error": {"message": f"model {model} does not exist"}})


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()

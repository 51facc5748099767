"""An OpenAI-compatible server that misbehaves in one way, chosen on the command line.

    python tests/misbehaving_http.py PORT MODE

It lists `smollm2` at /v1/models (so it joins a fleet with a real llama_cpp.server), answers GET
/hits with how many chats it was sent, and answers every chat with MODE:
`silent` accepts and never answers; `closes` sends a 200 and closes; `headers` sends a 200 and
then nothing; `stalls` sends a 200 and one piece of the answer, then nothing.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODE = sys.argv[2] if len(sys.argv) > 2 else "silent"
hits = 0
forever = threading.Event()  # never set: the handlers that stall wait on it


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"misbehaving {MODE}: " + format % args + "\n")

    def do_GET(self) -> None:  # noqa: N802
        body = {"object": "list", "data": [{"id": "smollm2", "object": "model"}]}
        if self.path == "/hits":
            body = {"hits": hits}
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:  # noqa: N802
        global hits
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hits += 1
        if MODE == "silent":
            forever.wait()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.flush()
        if MODE == "closes":
            self.close_connection = True
            return
        if MODE == "stalls":
            piece = {"object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
            self.wfile.write(b"data: " + json.dumps(piece).encode() + b"\n\n")
            self.wfile.flush()
        forever.wait()


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()

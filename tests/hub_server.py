"""Stand-ins on loopback for the Hugging Face Hub and the Ollama registry, downloads with Range.

It answers exactly the requests LocalForge makes of the real Hub: `GET /api/models/{o}/{r}/tree/main`
lists files with `lfs.oid` (the sha256), and `GET /{o}/{r}/resolve/main/{file}` redirects to a
CDN-like URL that serves the bytes, honouring `Range: bytes=N-` and `bytes=N-M`. As the Ollama
registry it serves `GET /v2/{ns}/{name}/manifests/{tag}` (Docker manifest v2 with Ollama's layer
media types) and `GET /v2/{ns}/{name}/blobs/sha256:{hex}`, redirecting to the same CDN. A test
can make the next download of a file drop the connection after some bytes, or serve bytes that do
not match the sha256; `tokens` makes a repository answer 401 unless its bearer token is sent;
`no_ranges` makes a file's bounded Range requests (`bytes=N-M`, a header read) fail, as a CDN might.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class HubFile:
    data: bytes
    sha256: str  # what the tree API advertises; normally the data's real digest


@dataclass
class Hub:
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    # file path -> bytes to send before dropping the connection, for the next download only (a
    # bounded Range request, `bytes=N-M`, reads a header: no download)
    drop_after: dict[str, int] = field(default_factory=dict)
    downloads: list[tuple[str, str | None]] = field(default_factory=list)  # (file, Range header)
    # the registry: "ns/name:tag" -> layers as (media type suffix, bytes, advertised sha256)
    library: dict[str, list[tuple[str, bytes, str]]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # gated repo -> the token it wants
    pace: dict[str, float] = field(default_factory=dict)  # file -> seconds to wait per 64 KiB sent
    authorizations: list[str | None] = field(default_factory=list)  # what each request sent
    no_ranges: set[str] = field(default_factory=set)  # files whose `bytes=N-M` requests get a 500
    url: str = ""
    server: ThreadingHTTPServer | None = None

    def add(self, repo: str, path: str, data: bytes, sha256: str | None = None) -> HubFile:
        file = HubFile(data, sha256 or hashlib.sha256(data).hexdigest())
        self.repos.setdefault(repo, {})[path] = file
        return file

    def publish(self, model: str, layers: dict[str, bytes], corrupt: str = "") -> dict[str, str]:
        """Put `ns/name:tag` in the registry; `layers` maps a kind (model, template, params,
        system, license, messages) to its bytes. The `corrupt` kind is served with bytes that do
        not match its digest. Returns each kind's sha256."""
        entries, digests = [], {}
        for kind, data in layers.items():
            digest = hashlib.sha256(data).hexdigest()
            served = data[:-1] + bytes([data[-1] ^ 0xFF]) if kind == corrupt else data
            entries.append((kind, served, digest))
            digests[kind] = digest
        self.library[model] = entries
        return digests

    def find(self, sha256: str) -> tuple[str, HubFile] | None:
        for files in self.repos.values():
            for path, file in files.items():
                if file.sha256 == sha256:
                    return path, file
        for model, layers in self.library.items():
            for kind, data, digest in layers:
                if digest == sha256:
                    return f"{model} {kind}", HubFile(data, digest)
        return None

    def manifest(self, model: str) -> dict[str, object] | None:
        layers = self.library.get(model)
        if layers is None:
            return None
        config = b'{"model_format":"gguf"}'
        return {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
                "layers": [{"mediaType": f"application/vnd.ollama.image.{kind}", "digest": f"sha256:{digest}",
                            "size": len(data)} for kind, data, digest in layers]}

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _json(self, status: int, value: object) -> None:
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, sha256: str) -> None:
            self.send_response(307)
            self.send_header("Location", f"/cdn/{sha256}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            path = unquote(urlsplit(self.path).path)
            hub.authorizations.append(self.headers.get("Authorization"))
            if m := re.fullmatch(r"/v2/([^/]+/[^/]+)/manifests/([^/]+)", path):
                manifest = hub.manifest(f"{m.group(1)}:{m.group(2)}")
                if manifest is None:
                    return self._json(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
                return self._json(200, manifest)
            if m := re.fullmatch(r"/v2/[^/]+/[^/]+/blobs/sha256:([0-9a-f]{64})", path):
                if m.group(1) == hashlib.sha256(b'{"model_format":"gguf"}').hexdigest():
                    body = b'{"model_format":"gguf"}'
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return None
                return self._redirect(m.group(1))
            if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/main", path):
                files = hub.repos.get(m.group(1))
                wanted = hub.tokens.get(m.group(1))
                if wanted and self.headers.get("Authorization") != f"Bearer {wanted}":
                    files = None
                if files is None:  # the real Hub answers 401 for a repo it will not show
                    return self._json(401, {"error": "Repository not found"})
                return self._json(200, [
                    {"type": "file", "path": p, "size": len(f.data), "oid": "0" * 40,
                     "lfs": {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}}
                    for p, f in files.items()] + [{"type": "file", "path": "README.md", "size": 5,
                                                    "oid": "1" * 40}])
            if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/main/(.+)", path):
                file = hub.repos.get(m.group(1), {}).get(m.group(2))
                if file is None:
                    return self._json(404, {"error": "Entry not found"})
                self.send_response(302)
                self.send_header("Location", f"/cdn/{file.sha256}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if m := re.fullmatch(r"/cdn/([0-9a-f]{64})", path):
                return self._serve(m.group(1))
            return self._json(404, {"error": "not found"})

        def _serve(self, sha256: str) -> None:
            found = hub.find(sha256)
            if found is None:
                return self._json(404, {"error": "not found"})
            name, file = found
            wanted = self.headers.get("Range")
            hub.downloads.append((name, wanted))
            bounded = bool(wanted and re.fullmatch(r"bytes=\d+-\d+", wanted))
            if bounded and name in hub.no_ranges:
                return self._json(500, {"error": "range requests are failing"})
            start, end = 0, len(file.data)
            if wanted and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)):
                start = int(m.group(1))
                end = min(end, int(m.group(2)) + 1) if m.group(2) else end
            body = file.data[start:end]
            partial = wanted is not None and (start, end) != (0, len(file.data))
            self.send_response(206 if partial else 200)
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(file.data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            cut = None if bounded else hub.drop_after.pop(name, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return None
            step = 1 << 16
            for start in range(0, len(body), step):
                self.wfile.write(body[start:start + step])
                if name in hub.pace:
                    self.wfile.flush()
                    time.sleep(hub.pace[name])
            return None

    return Handler


def start_hub() -> Hub:
    hub = Hub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.server = server
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hub

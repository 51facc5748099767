"""The models directory, laid out as Ollama does: `blobs/sha256-<hex>` and `manifests/<name>/<tag>`.

A manifest is a small JSON file naming the GGUF blob plus Modelfile-style settings. Plain `*.gguf`
files dropped in the models directory are served too, named after the file. Every path is built
from a validated model name or digest, never from raw client text.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localforge import names
from localforge.errors import BadRequest, ModelNotFound

_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")


@dataclass(slots=True)
class Manifest:
    """A local model: which GGUF file, and the Modelfile settings on top of it."""

    model: str
    gguf: str  # a blob digest "sha256:<hex>", or an absolute path for files outside the store
    template: str = ""
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    source: str = ""  # where it came from: "hf.co/…", "create", "file", "config", "demo"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    # a conversation to start from, given to /api/create as `messages`
    messages: list[dict[str, Any]] = field(default_factory=list)


def digest_hex(digest: str) -> str:
    """`sha256:<hex>` or `sha256-<hex>` -> `<hex>`; BadRequest otherwise."""
    m = _DIGEST.match(digest.strip())
    if not m:
        raise BadRequest(f"invalid digest '{digest}': expected sha256:<64 hex digits>")
    return m.group(1)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.manifests = root / "manifests"

    def ensure(self) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)

    # blobs
    def blob_path(self, digest: str) -> Path:
        return self.blobs / f"sha256-{digest_hex(digest)}"

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def partial_path(self, digest: str) -> Path:
        return self.blobs / f"sha256-{digest_hex(digest)}-partial"

    # manifests
    def manifest_path(self, name: str) -> Path:
        parsed = names.parse(name)
        return self.manifests.joinpath(*[p.lower() for p in parsed.parts], parsed.tag.lower())

    def read(self, name: str) -> Manifest | None:
        path = self.manifest_path(name)
        if not path.is_file():
            return None
        try:
            return Manifest(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None  # a damaged manifest is skipped, never served

    def write(self, manifest: Manifest) -> None:
        """Write atomically, so a crash never leaves a half-written manifest."""
        path = self.manifest_path(manifest.model)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(manifest), fh, indent=1)
        os.replace(tmp, path)

    def delete(self, name: str) -> None:
        path = self.manifest_path(name)
        if not path.is_file():
            raise ModelNotFound(name)
        path.unlink()
        for parent in path.parents:
            if parent == self.manifests or any(parent.iterdir()):
                break
            parent.rmdir()

    def list(self) -> list[Manifest]:
        if not self.manifests.is_dir():
            return []
        found = []
        for path in sorted(self.manifests.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                rel = path.relative_to(self.manifests)
                name = "/".join(rel.parts[:-1]) + ":" + rel.parts[-1]
                manifest = self.read(name) if names.is_valid(name) else None
                if manifest is not None:
                    found.append(manifest)
        return found

    def gguf_path(self, manifest: Manifest) -> Path:
        if manifest.gguf.startswith("sha256"):
            return self.blob_path(manifest.gguf)
        return Path(manifest.gguf)

    def loose_files(self) -> builtins.list[Manifest]:
        """Plain `*.gguf` files in the models directory, each served under its file name."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*.gguf")):
            name = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).strip("-.").lower()
            if name and names.is_valid(name):
                # the link itself, not its target: an error about it must not name where it points
                found.append(Manifest(model=f"{name}:latest", gguf=str(path.absolute()), source="file"))
        return found

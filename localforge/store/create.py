"""Making models in the store: uploaded blobs, `/api/create`, copies, and deletes.

A model is made from one GGUF (an uploaded blob, another model's file, or an absolute path to a
`.gguf` on the server's disk) plus Modelfile settings. Everything is checked before anything is
written: the blob exists and reads as a GGUF, the parameters are known options, the template
parses. Models that live outside the store (loose files, config entries, demo models) can be
copied into it, but not deleted through the API: they are owned by the file system or the config.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from localforge import names
from localforge.errors import BadRequest
from localforge.gguf import gguf_info, gotemplate, prompts
from localforge.options import parse_modelfile_parameters
from localforge.store.layout import Manifest, ModelStore, digest_hex

WRITE_BATCH = 1 << 20
_ACTION = re.compile(r"\{\{.*?\}\}", re.S)


# blobs
async def receive_blob(store: ModelStore, digest: str, chunks: AsyncIterator[bytes]) -> bool:
    """Stream an upload into `blobs/`, checking its sha256; True if stored, False if it was there.

    The bytes go to a temporary file beside the blobs and are renamed into place only when the
    digest matches, so a failed or mismatched upload leaves nothing behind.
    """
    want = digest_hex(digest)
    store.ensure()
    if store.has_blob(digest):
        async for _ in chunks:  # drain, so the client finishes sending before it reads the answer
            pass
        return False
    fd, tmp = tempfile.mkstemp(dir=store.blobs, prefix=".upload-")
    sha = hashlib.sha256()

    def put(data: bytes) -> None:
        sha.update(data)
        os.write(fd, data)

    try:
        buffer = bytearray()
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= WRITE_BATCH:
                data, buffer = bytes(buffer), bytearray()
                await anyio.to_thread.run_sync(put, data)
        await anyio.to_thread.run_sync(put, bytes(buffer))
        os.close(fd)
        fd = -1
        if sha.hexdigest() != want:
            raise BadRequest(f"digest mismatch: the body's digest is sha256:{sha.hexdigest()}, "
                             f"not sha256:{want}")
        os.replace(tmp, store.blob_path(digest))
    finally:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
    return True


def remove_unreferenced(store: ModelStore, digest: str) -> bool:
    """Delete a blob that no manifest names any more; True if it was removed."""
    if not digest.startswith("sha256") or any(m.gguf == digest for m in store.list()):
        return False
    path = store.blob_path(digest)
    if not path.is_file():
        return False
    path.unlink()
    return True


def prune_blobs(store: ModelStore, grace_s: float = 3600.0) -> list[str]:
    """Delete blobs no manifest names, and abandoned uploads and partial pulls, once they are
    older than `grace_s` (an upload is followed by its /api/create within seconds; a partial
    pull is resumed by the next pull of the same model, so those get a day). Blocking: run it
    in a thread. Returns the names of the files removed."""
    if not store.blobs.is_dir():
        return []
    referenced = {store.blob_path(m.gguf).name for m in store.list() if m.gguf.startswith("sha256")}
    now = time.time()
    removed = []
    for path in store.blobs.iterdir():
        keep_s = 86400.0 if path.name.endswith("-partial") else grace_s
        try:
            if path.name in referenced or not path.is_file() or now - path.stat().st_mtime < keep_s:
                continue
            path.unlink()
        except OSError:
            continue
        removed.append(path.name)
    return removed


# create
def from_blob(store: ModelStore, files: dict[str, str]) -> Manifest:
    if len(files) != 1:
        raise BadRequest(f"files must name exactly one GGUF file, got {len(files)}: "
                         f"{', '.join(sorted(files))}")
    filename, digest = next(iter(files.items()))
    digest = f"sha256:{digest_hex(digest)}"
    if not store.has_blob(digest):
        raise BadRequest(f"blob {digest} for '{filename}' not found: upload it first with "
                         f"POST /api/blobs/{digest}")
    return Manifest(model="", gguf=digest, source="create")


def from_path(text: str) -> Manifest:
    """A GGUF file on the server's own disk; only an absolute path to an existing readable .gguf."""
    if len(text) > 4096 or "\0" in text:
        raise BadRequest("from: not a model name, and too long (or odd) to be a path")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise BadRequest(f"from: '{text}' is a relative path; give an absolute path to a .gguf "
                         "file on the server, or upload it with POST /api/blobs")
    try:
        readable = path.suffix.lower() == ".gguf" and path.is_file() and os.access(path, os.R_OK)
    except OSError:  # a name too long, a loop of links
        readable = False
    if not readable:
        raise BadRequest(f"from: {path} is not a readable .gguf file on the server")
    return Manifest(model="", gguf=str(path.resolve()), source="file")


def looks_like_path(text: str) -> bool:
    return text.startswith(("/", "~", "./", "../")) or text.lower().endswith(".gguf")


def check_template(text: str) -> None:
    """A Go template must compile with our gotemplate subset, a Jinja one must parse."""
    if gotemplate.is_go_template(text):
        gotemplate.compile_template(text)
        if "{{" in _ACTION.sub("", text):
            raise BadRequest("template: unclosed action ('{{' without '}}')")
    else:
        try:
            ImmutableSandboxedEnvironment().parse(text)
        except TemplateSyntaxError as exc:
            raise BadRequest(f"template: {exc.message} (line {exc.lineno})") from exc
        except RecursionError as exc:
            raise BadRequest("template: nested too deeply") from exc
    prompts.trial_render(text)  # CPU-bound and bounded: the caller runs settle in a thread


def check_gguf(store: ModelStore, manifest: Manifest, label: str) -> None:
    """Raise BadRequest unless the model's file reads as a GGUF (blocking: run in a thread)."""
    try:
        gguf_info.read(store.gguf_path(manifest))
    except BadRequest as exc:
        raise BadRequest(f"{label} is not a valid GGUF file: LocalForge creates models from "
                         "GGUF files only") from exc
    except OSError as exc:
        raise BadRequest(f"{label} cannot be read: {exc.strerror}") from exc


def settle(base: Manifest, name: str, *, template: str | None, system: str | None,
           parameters: dict[str, Any] | None, license: str | list[str] | None,
           messages: list[dict[str, Any]] | None) -> Manifest:
    """The new model: the base with each given setting replacing (parameters: merged over) its own."""
    if template is not None and template.strip():
        check_template(template)
    merged = {**base.parameters, **parse_modelfile_parameters(parameters or {})}
    return replace(
        base, model=names.canonical(name), parameters=merged,
        template=base.template if template is None else template,
        system=base.system if system is None else system,
        license=base.license if license is None else (
            "\n".join(license) if isinstance(license, list) else license),
        messages=base.messages if messages is None else messages,
        created_at=datetime.now(UTC).isoformat())


def register(store: ModelStore, manifest: Manifest) -> None:
    """Write the manifest; the blob of a model it replaces goes if no other model uses it."""
    previous = store.read(manifest.model)
    store.write(manifest)
    if previous is not None and previous.gguf != manifest.gguf:
        remove_unreferenced(store, previous.gguf)


async def write_checked(store: ModelStore, manifest: Manifest, label: str) -> None:
    await anyio.to_thread.run_sync(check_gguf, store, manifest, label)
    await anyio.to_thread.run_sync(register, store, manifest)

"""Pulling GGUF models from Hugging Face, named as Ollama spells them: `hf.co/{owner}/{repo}[:{quant}]`.

The repository's files are listed through the Hub API as huggingface_hub does (`/api/models/…/tree/main`
gives each file's size and, for LFS files, its sha256). The file whose name carries the quant tag is
downloaded into `blobs/sha256-<hex>-partial`, resumed with a Range header when a partial exists, and
moved into place only once its sha256 matches and it reads as a GGUF; then the manifest is written.
A network failure keeps the partial for the next pull; a digest mismatch deletes it.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

import anyio
import anyio.to_thread
import httpx

from localforge import __version__, names
from localforge.backends import gguf_info
from localforge.errors import BackendFailed, BadRequest, LocalForgeError, NotFound
from localforge.store import create
from localforge.store.layout import Manifest, ModelStore, sha256_file

HUB_HOSTS = ("hf.co", "huggingface.co")
DEFAULT_QUANT = "Q4_K_M"  # what Ollama picks for `hf.co/{owner}/{repo}` without a tag
PROGRESS_EVERY_S = 0.25
WRITE_BATCH = 1 << 20
_SHARD = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.I)
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class HubName:
    owner: str
    repo: str
    quant: str | None  # None: the default file
    model: str  # the canonical model name the pulled model is registered under

    @property
    def repo_id(self) -> str:
        return f"{self.owner}/{self.repo}"


@dataclass(frozen=True, slots=True)
class HubFile:
    path: str
    size: int
    sha256: str

    @property
    def quant(self) -> str:
        """The last `-`/`.` separated word of the file name: `x-Q4_K_M.gguf` -> `Q4_K_M`."""
        stem = self.path.rsplit("/", 1)[-1][: -len(".gguf")]
        return re.split(r"[-.]", stem)[-1].upper()


@dataclass(slots=True)
class PullStep:
    """One progress line, as Ollama reports a pull."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


def hub_name(name: str) -> HubName | None:
    """`hf.co/o/r:Q4_K_M` -> HubName; None for names that are not Hugging Face models."""
    parsed = names.parse(name)
    if parsed.parts[0].lower() not in HUB_HOSTS:
        return None
    if len(parsed.parts) != 3:
        raise BadRequest(f"invalid model name '{name}': expected hf.co/{{owner}}/{{repo}}[:{{quant}}]")
    quant = None if parsed.tag.lower() == names.DEFAULT_TAG else parsed.tag
    return HubName(parsed.parts[1], parsed.parts[2], quant, str(parsed))


def _client(endpoint: str) -> httpx.AsyncClient:
    # identity encoding: byte offsets in Range and Content-Length must mean file bytes
    async def confine(request: httpx.Request) -> None:
        if not _may_follow(str(request.url), endpoint):
            raise BackendFailed(f"{endpoint} redirected the download to {request.url.scheme}://"
                                f"{request.url.host}, which LocalForge does not follow")

    return httpx.AsyncClient(
        follow_redirects=True, max_redirects=5, timeout=httpx.Timeout(60.0, connect=15.0),
        event_hooks={"request": [confine]},
        headers={"User-Agent": f"localforge/{__version__}", "Accept-Encoding": "identity"})


def _may_follow(url: str, endpoint: str) -> bool:
    """Issue 15: the Hub's own origin, or a CDN over https that is not an address on this
    machine or its network (a redirect must not turn a pull into a request to the LAN)."""
    if _same_origin(url, endpoint):
        return True
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.hostname == "localhost":
        return False
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return True
    return address.is_global


def confined(path: str) -> bool:
    """A repository file path that stays inside the repository: no `..`, no absolute path."""
    parts = path.split("/")
    return (bool(path) and path.isprintable() and "\\" not in path
            and all(part not in ("", ".", "..") for part in parts))


def _same_origin(url: str, endpoint: str) -> bool:
    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _upstream(response: httpx.Response, what: str) -> LocalForgeError:
    return BackendFailed(f"Hugging Face answered {response.status_code} for {what}")


async def list_files(client: httpx.AsyncClient, endpoint: str, name: HubName) -> list[HubFile]:
    """The repository's GGUF files (LFS only: their sha256 is what makes the download checkable)."""
    url: str | None = f"{endpoint}/api/models/{name.repo_id}/tree/main?recursive=true"
    entries: list[dict[str, Any]] = []
    while url:
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            raise BackendFailed(f"cannot reach {endpoint}: {exc}") from exc
        if response.status_code in (401, 403, 404):
            raise NotFound(f"model '{name.model}' not found: repository '{name.repo_id}' does not "
                           f"exist on {endpoint}, or it is private or gated")
        if response.status_code != 200:
            raise _upstream(response, f"the file list of {name.repo_id}")
        try:
            page = response.json()
        except ValueError as exc:
            raise BackendFailed(f"{endpoint} sent a file list that is not JSON") from exc
        entries += [e for e in page if isinstance(e, dict)] if isinstance(page, list) else []
        following = response.links.get("next", {}).get("url")
        url = following if following and _same_origin(following, endpoint) else None
    files = []
    for entry in entries:
        path, lfs = str(entry.get("path", "")), entry.get("lfs") or {}
        base = path.rsplit("/", 1)[-1].lower()
        if entry.get("type") != "file" or not base.endswith(".gguf") or base.startswith("mmproj"):
            continue
        if not confined(path):
            raise BackendFailed(f"{endpoint} lists a file outside repository {name.repo_id}: {path!r}")
        oid = str(lfs.get("oid", "")).removeprefix("sha256:")
        if _HEX.match(oid):
            files.append(HubFile(path, int(lfs.get("size") or entry.get("size") or 0), oid))
    return sorted(files, key=lambda f: f.path)


def choose(files: list[HubFile], name: HubName) -> HubFile:
    """The file a quant tag names (case-insensitive, whole word); the default is Q4_K_M or the first."""
    if not files:
        raise NotFound(f"repository '{name.repo_id}' has no GGUF files")
    wanted = name.quant or DEFAULT_QUANT
    word = re.compile(rf"(?:^|[-._]){re.escape(wanted)}(?:[-.]|$)", re.I)
    matches = [f for f in files if word.search(f.path.rsplit("/", 1)[-1])]
    if not matches and name.quant is None:
        matches = files
    if not matches:
        available = ", ".join(sorted({f.quant for f in files}))
        raise NotFound(f"model '{name.model}' not found: {name.repo_id} has no file for quant "
                       f"'{name.quant}'; available: {available}")
    if _SHARD.search(matches[0].path):
        raise BadRequest(f"{matches[0].path} is split into several files, which LocalForge "
                         "cannot pull yet; choose another quant")
    return matches[0]


@asynccontextmanager
async def _exclusive(path: Path) -> AsyncIterator[IO[bytes]]:
    """The partial file, opened for appending and locked, so two pulls never write it at once."""
    fh = await anyio.to_thread.run_sync(open, path, "ab")
    try:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await anyio.sleep(0.2)
        yield fh
    finally:
        fh.close()


class _Throttle:
    def __init__(self) -> None:
        self.last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            return True
        return False


async def _receive(client: httpx.AsyncClient, url: str, fh: IO[bytes], file: HubFile,
                   step: PullStep) -> AsyncIterator[PullStep]:
    """Append the rest of the file to the partial, yielding progress now and then."""
    offset = os.fstat(fh.fileno()).st_size
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    throttle = _Throttle()
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 200 and offset:  # the server ignored the Range: start over
            fh.truncate(0)
            offset = 0
        elif response.status_code not in (200, 206):
            raise _upstream(response, file.path)
        step.completed = offset
        if throttle.due():
            yield step
        buffer = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                buffer += chunk
                step.completed += len(chunk)
                if len(buffer) >= WRITE_BATCH:
                    data, buffer = bytes(buffer), bytearray()
                    await anyio.to_thread.run_sync(fh.write, data)
                if throttle.due():
                    yield step
        except httpx.HTTPError as exc:
            raise BackendFailed(f"download of {file.path} interrupted after {step.completed} of "
                                f"{file.size} bytes ({exc}); pull again to resume") from exc
        finally:
            fh.write(buffer)  # what arrived before a failure is kept for the next pull to resume
            fh.flush()


async def _download(client: httpx.AsyncClient, url: str, store: ModelStore,
                    file: HubFile) -> AsyncIterator[PullStep]:
    digest = f"sha256:{file.sha256}"
    step = PullStep(f"pulling {file.sha256[:12]}", digest, file.size, 0)
    if store.has_blob(digest):
        step.completed = file.size
        yield step
        return
    partial = store.partial_path(digest)
    async with _exclusive(partial) as fh:
        if store.has_blob(digest):  # another pull finished it while this one waited
            step.completed = file.size
            yield step
            return
        if os.fstat(fh.fileno()).st_size > file.size:
            fh.truncate(0)
        if os.fstat(fh.fileno()).st_size < file.size:
            async for progress in _receive(client, url, fh, file, step):
                yield progress
        step.completed = os.fstat(fh.fileno()).st_size
        yield step
        if step.completed < file.size:
            raise BackendFailed(f"download of {file.path} ended after {step.completed} of "
                                f"{file.size} bytes; pull again to resume")
        yield PullStep("verifying sha256 digest")
        await _verify(partial, file)
        os.replace(partial, store.blob_path(digest))


async def _verify(partial: Path, file: HubFile) -> None:
    got = await anyio.to_thread.run_sync(sha256_file, partial)
    if got != file.sha256:
        partial.unlink(missing_ok=True)
        raise BackendFailed(f"digest mismatch, file must be downloaded again: want "
                            f"sha256:{file.sha256}, got sha256:{got}")
    try:
        await anyio.to_thread.run_sync(gguf_info.read, partial)
    except BadRequest as exc:
        partial.unlink(missing_ok=True)
        raise BadRequest(f"{file.path} from Hugging Face is not a valid GGUF file") from exc


async def pull(store: ModelStore, endpoint: str, name: HubName) -> AsyncIterator[PullStep]:
    """Resolve, download, verify and register; the first step comes only once the file is chosen,
    so an unknown repository or quant is an error before any output."""
    endpoint = endpoint.rstrip("/")
    async with _client(endpoint) as client:
        file = choose(await list_files(client, endpoint, name), name)
        yield PullStep("pulling manifest")
        url = f"{endpoint}/{name.repo_id}/resolve/main/{quote(file.path)}"
        async for step in _download(client, url, store, file):
            yield step
    yield PullStep("writing manifest")
    manifest = Manifest(model=name.model, gguf=f"sha256:{file.sha256}",
                        source=f"hf.co/{name.repo_id}/{file.path}")
    await anyio.to_thread.run_sync(create.register, store, manifest)
    yield PullStep("success")

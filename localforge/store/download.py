"""Downloading a blob by its sha256 into the store, resumably, as both kinds of pull do.

The bytes go to `blobs/sha256-<hex>-partial`, opened for appending under a lock so two pulls never
write it at once; a partial left by an interrupted pull is resumed with a `Range` header. Only
when the file is whole and its sha256 matches is it renamed into place, so a mismatch is never
registered. Progress comes as `PullStep`s, the lines Ollama streams for a pull.
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
from typing import IO
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx

from localforge import __version__
from localforge.errors import BackendFailed, BadRequest, LocalForgeError
from localforge.gguf import gguf_info
from localforge.store.layout import ModelStore, sha256_file

PROGRESS_EVERY_S = 0.25
WRITE_BATCH = 1 << 20
HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(slots=True)
class PullStep:
    """One progress line, as Ollama reports a pull."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


@dataclass(frozen=True, slots=True)
class Blob:
    """A file to fetch: what errors call it, where it comes from, its size and sha256."""

    label: str
    origin: str  # "Hugging Face", "the registry at https://…": who answered
    size: int
    sha256: str

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"

    def step(self, completed: int) -> PullStep:
        return PullStep(f"pulling {self.sha256[:12]}", self.digest, self.size, completed)


def client(origin: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """A client for downloads from `origin` (the Hub, the registry). identity encoding: byte
    offsets in Range and Content-Length must mean file bytes. httpx drops an Authorization
    header when a redirect leaves the origin (a CDN gets no token). A redirect is followed only
    where `may_follow` allows."""
    async def confine(request: httpx.Request) -> None:
        if not may_follow(str(request.url), origin):
            raise BackendFailed(f"{origin} redirected the download to {request.url.scheme}://"
                                f"{request.url.host}, which LocalForge does not follow")

    return httpx.AsyncClient(
        follow_redirects=True, max_redirects=5, timeout=httpx.Timeout(60.0, connect=15.0),
        event_hooks={"request": [confine]},
        headers={"User-Agent": f"localforge/{__version__}", "Accept-Encoding": "identity",
                 **(headers or {})})


def may_follow(url: str, origin: str) -> bool:
    """The origin itself, or a CDN over https that is not an address on this machine or its
    network (a redirect must not turn a pull into a request to the LAN)."""
    if same_origin(url, origin):
        return True
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.hostname == "localhost":
        return False
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return True
    return address.is_global


def same_origin(url: str, origin: str) -> bool:
    a, b = urlsplit(url), urlsplit(origin)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def upstream_error(response: httpx.Response, origin: str, what: str) -> LocalForgeError:
    return BackendFailed(f"{origin} answered {response.status_code} for {what}")


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


async def _receive(http: httpx.AsyncClient, url: str, fh: IO[bytes], blob: Blob,
                   step: PullStep) -> AsyncIterator[PullStep]:
    """Append the rest of the file to the partial, yielding progress now and then."""
    offset = os.fstat(fh.fileno()).st_size
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    throttle = _Throttle()
    try:
        async with http.stream("GET", url, headers=headers) as response:
            if response.status_code == 200 and offset:  # the server ignored the Range: start over
                fh.truncate(0)
                offset = 0
            elif response.status_code not in (200, 206):
                raise upstream_error(response, blob.origin, blob.label)
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
            finally:
                fh.write(buffer)  # what arrived before a failure is kept for the next pull to resume
                fh.flush()
    except httpx.HTTPError as exc:
        raise BackendFailed(f"download of {blob.label} interrupted after {step.completed} of "
                            f"{blob.size} bytes ({exc}); pull again to resume") from exc


async def fetch(http: httpx.AsyncClient, url: str, store: ModelStore, blob: Blob,
                announce: bool = True) -> AsyncIterator[PullStep]:
    """Download into the partial (resuming), verify, and move into `blobs/`; the
    `verifying sha256 digest` line comes before the check when `announce` is set."""
    step = blob.step(0)
    if store.has_blob(blob.digest):
        step.completed = blob.size
        yield step
        return
    partial = store.partial_path(blob.digest)
    async with _exclusive(partial) as fh:
        if store.has_blob(blob.digest):  # another pull finished it while this one waited
            step.completed = blob.size
            yield step
            return
        if os.fstat(fh.fileno()).st_size > blob.size:
            fh.truncate(0)
        if os.fstat(fh.fileno()).st_size < blob.size:
            async for progress in _receive(http, url, fh, blob, step):
                yield progress
        step.completed = os.fstat(fh.fileno()).st_size
        yield step
        if step.completed < blob.size:
            raise BackendFailed(f"download of {blob.label} ended after {step.completed} of "
                                f"{blob.size} bytes; pull again to resume")
        if announce:
            yield PullStep("verifying sha256 digest")
        await verify_gguf(partial, blob)
        os.replace(partial, store.blob_path(blob.digest))


async def verify_gguf(partial: Path, blob: Blob) -> None:
    """The sha256 must match and the file must read as a GGUF; otherwise the partial goes."""
    got = await anyio.to_thread.run_sync(sha256_file, partial)
    if got != blob.sha256:
        partial.unlink(missing_ok=True)
        raise BackendFailed(f"digest mismatch, file must be downloaded again: want "
                            f"{blob.digest}, got sha256:{got}")
    try:
        await anyio.to_thread.run_sync(gguf_info.read, partial)
    except BadRequest as exc:
        partial.unlink(missing_ok=True)
        raise BadRequest(f"{blob.label} from {blob.origin} is not a valid GGUF file") from exc

"""Pulling GGUF models from Hugging Face, named as Ollama spells them: `hf.co/{owner}/{repo}[:{quant}]`.

The repository's files are listed through the Hub API as huggingface_hub does (`/api/models/…/tree/main`
gives each file's size and, for LFS files, its sha256). The file whose name carries the quant tag is
downloaded by `download.fetch` (resumable, verified), then the manifest is written. Without a tag,
the file is the one that fits this machine best (`fit.pick`), judged from one file's header: its
first bytes, read with a Range request (or from the store when that file is already here).
`HF_TOKEN`, when set, is sent to the Hub so gated repositories work.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import httpx

from localforge import names
from localforge.errors import BackendFailed, BadRequest, LocalForgeError, NotFound
from localforge.gguf import gguf_info
from localforge.store import create, download
from localforge.store.download import HEX, Blob, PullStep
from localforge.store.fit import DEFAULT_QUANT, Fit, Header, Machine, fit, pick, reason
from localforge.store.layout import Manifest, ModelStore

HUB_HOSTS = ("hf.co", "huggingface.co")
ORIGIN = "Hugging Face"
_SHARD = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.I)
# how much of a file is read for its header, then (if the header goes on) up to how much: the
# vocabulary makes most of it, 3 to 7 MB for 150k to 260k tokens with their merges
HEADER_READS = (8 << 20, 64 << 20)


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

    @property
    def split(self) -> bool:
        """One part of a model split into several files, which LocalForge cannot pull yet."""
        return bool(_SHARD.search(self.path))


def hub_name(name: str) -> HubName | None:
    """`hf.co/o/r:Q4_K_M` -> HubName; None for names that are not Hugging Face models."""
    parsed = names.parse(name)
    if parsed.parts[0].lower() not in HUB_HOSTS:
        return None
    if len(parsed.parts) != 3:
        raise BadRequest(f"invalid model name '{name}': expected hf.co/{{owner}}/{{repo}}[:{{quant}}]")
    quant = None if parsed.tag.lower() == names.DEFAULT_TAG else parsed.tag
    return HubName(parsed.parts[1], parsed.parts[2], quant, str(parsed))


def _token_headers() -> dict[str, str]:
    """HF_TOKEN, read when a pull starts (as huggingface_hub does), opens gated repositories."""
    token = os.environ.get("HF_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def confined(path: str) -> bool:
    """A repository file path that stays inside the repository: no `..`, no absolute path."""
    parts = path.split("/")
    return (bool(path) and path.isprintable() and "\\" not in path
            and all(part not in ("", ".", "..") for part in parts))


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
                           f"exist on {endpoint}, or it is private or gated"
                           + ("" if _token_headers() else " (set HF_TOKEN for a gated one)"))
        if response.status_code != 200:
            raise download.upstream_error(response, ORIGIN, f"the file list of {name.repo_id}")
        try:
            page = response.json()
        except ValueError as exc:
            raise BackendFailed(f"{endpoint} sent a file list that is not JSON") from exc
        entries += [e for e in page if isinstance(e, dict)] if isinstance(page, list) else []
        following = response.links.get("next", {}).get("url")
        url = following if following and download.same_origin(following, endpoint) else None
    files = []
    for entry in entries:
        path, lfs = str(entry.get("path", "")), entry.get("lfs") or {}
        base = path.rsplit("/", 1)[-1].lower()
        if entry.get("type") != "file" or not base.endswith(".gguf") or base.startswith("mmproj"):
            continue
        if not confined(path):
            raise BackendFailed(f"{endpoint} lists a file outside repository {name.repo_id}: {path!r}")
        oid = str(lfs.get("oid", "")).removeprefix("sha256:")
        if HEX.match(oid):
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
    if matches[0].split:
        raise BadRequest(f"{matches[0].path} is split into several files, which LocalForge "
                         "cannot pull yet; choose another quant")
    return matches[0]


def _url(endpoint: str, name: HubName, file: HubFile) -> str:
    return f"{endpoint}/{name.repo_id}/resolve/main/{quote(file.path)}"


async def _first_bytes(client: httpx.AsyncClient, url: str, have: bytes, want: int) -> bytes:
    """The file's first `want` bytes, of which `have` are already here: the rest is asked for
    with a Range request. A server that ignores Range sends the whole file, of which only the
    first `want` bytes are read."""
    async with client.stream("GET", url, headers={"Range": f"bytes={len(have)}-{want - 1}"}) as response:
        if response.status_code not in (200, 206):
            raise download.upstream_error(response, ORIGIN, f"the first bytes of {url.rsplit('/', 1)[-1]}")
        data = bytearray(have if response.status_code == 206 else b"")
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= want:
                break
    return bytes(data[:want])


async def read_header(client: httpx.AsyncClient, store: ModelStore, endpoint: str, name: HubName,
                      file: HubFile) -> Header:
    """The file's header: from the store when the file is already here, else from its first bytes
    on the Hub. One that cannot be read is a Header without info that says why."""
    blob = f"sha256:{file.sha256}"
    try:
        if store.has_blob(blob):
            return Header(await anyio.to_thread.run_sync(gguf_info.read, store.blob_path(blob)), file.size)
        data = b""
        for want in HEADER_READS:
            data = await _first_bytes(client, _url(endpoint, name, file), data, min(want, file.size))
            try:
                info = await anyio.to_thread.run_sync(gguf_info.read_header, data, file.path, file.size)
                return Header(info, file.size)
            except gguf_info.Truncated:
                if len(data) < want:  # the file (or what the server sent) ended first
                    raise BadRequest(f"{file.path} ends inside its header") from None
        problem = f"it is longer than {HEADER_READS[-1] >> 20} MiB"
    except httpx.HTTPError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    except LocalForgeError as exc:
        problem = exc.message
    return Header(None, file.size, f"the header of {file.path} could not be read: {problem}")


@dataclass(frozen=True, slots=True)
class Plan:
    """A repository's files, where each would run, and which one the pull takes, with the line
    that says why; `fits` holds None for a part of a split file."""

    files: list[HubFile]
    fits: list[Fit | None]
    header: Header
    machine: Machine
    chosen: HubFile
    reason: str

    @property
    def approximate(self) -> str:
        """"" when the estimate comes from a header; else why it does not, and what it assumes."""
        if self.header.info is not None:
            return ""
        return (f"approximate: {self.header.problem}; weights are taken as each file's size and "
                "the context as a tenth of them")


async def plan(client: httpx.AsyncClient, store: ModelStore, endpoint: str, name: HubName,
               machine: Machine) -> Plan:
    """Which file to pull, and why: the one the tag names (always, with a warning when it will not
    fit), else the one `fit.pick` chooses. Errors (no such repository or quant, nothing fits)
    come before anything is downloaded."""
    files = await list_files(client, endpoint, name)
    whole = [f for f in files if not f.split]
    named = choose(files, name) if name.quant is not None or not whole else None
    # any file's header stands for all: the named one, else one already here (free), else the smallest
    here = [f for f in whole if store.has_blob(f"sha256:{f.sha256}")]
    header = await read_header(client, store, endpoint, name,
                               named or min(here or whole, key=lambda f: f.size))
    fits = [None if f.split else fit(header, f.quant, f.size, machine) for f in files]
    if named is not None:
        own = fit(header, named.quant, named.size, machine)
        line = reason(own, machine, named=True)
        if own.where == "too big":
            line = f"warning: {line}; it will not load until memory is freed or the budgets are raised"
    else:
        candidates = [(file, f) for file, f in zip(files, fits, strict=True) if f is not None]
        index, line = pick([f for _, f in candidates], machine)
        named = candidates[index][0]
    result = Plan(files, fits, header, machine, named, line)
    return replace(result, reason=f"{line} ({result.approximate})") if result.approximate else result


async def pull(store: ModelStore, endpoint: str, name: HubName, machine: Machine) -> AsyncIterator[PullStep]:
    """Resolve, download, verify and register; the first step comes only once the file is chosen,
    so an unknown repository or quant, or a repository with nothing that fits, is an error before
    any output. The second step says which file, and why."""
    endpoint = endpoint.rstrip("/")
    async with download.client(endpoint, _token_headers()) as client:
        chosen = await plan(client, store, endpoint, name, machine)
        file = chosen.chosen
        yield PullStep("pulling manifest")
        yield PullStep(chosen.reason)
        async for step in download.fetch(client, _url(endpoint, name, file), store,
                                         Blob(file.path, ORIGIN, file.size, file.sha256)):
            yield step
    yield PullStep("writing manifest")
    manifest = Manifest(model=name.model, gguf=f"sha256:{file.sha256}",
                        source=f"hf.co/{name.repo_id}/{file.path}")
    await anyio.to_thread.run_sync(create.register, store, manifest)
    yield PullStep("success")


async def survey(store: ModelStore, endpoint: str, name: HubName, machine: Machine) -> Plan:
    """The plan of a pull, without the pull (`localforge pull --list`)."""
    endpoint = endpoint.rstrip("/")
    async with download.client(endpoint, _token_headers()) as client:
        return await plan(client, store, endpoint, name, machine)

"""Pulling GGUF models from Hugging Face, named as Ollama spells them: `hf.co/{owner}/{repo}[:{quant}]`.

The repository's files are listed through the Hub API as huggingface_hub does (`/api/models/…/tree/main`
gives each file's size and, for LFS files, its sha256). The file whose name carries the quant tag is
downloaded by `download.fetch` (resumable, verified), then the manifest is written. `HF_TOKEN`, when
set, is sent to the Hub so gated repositories work.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import httpx

from localforge import names
from localforge.errors import BackendFailed, BadRequest, NotFound
from localforge.store import create, download
from localforge.store.download import HEX, Blob, PullStep
from localforge.store.layout import Manifest, ModelStore

HUB_HOSTS = ("hf.co", "huggingface.co")
DEFAULT_QUANT = "Q4_K_M"  # what Ollama picks for `hf.co/{owner}/{repo}` without a tag
ORIGIN = "Hugging Face"
_SHARD = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.I)


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
    if _SHARD.search(matches[0].path):
        raise BadRequest(f"{matches[0].path} is split into several files, which LocalForge "
                         "cannot pull yet; choose another quant")
    return matches[0]


async def pull(store: ModelStore, endpoint: str, name: HubName) -> AsyncIterator[PullStep]:
    """Resolve, download, verify and register; the first step comes only once the file is chosen,
    so an unknown repository or quant is an error before any output."""
    endpoint = endpoint.rstrip("/")
    async with download.client(endpoint, _token_headers()) as client:
        file = choose(await list_files(client, endpoint, name), name)
        yield PullStep("pulling manifest")
        url = f"{endpoint}/{name.repo_id}/resolve/main/{quote(file.path)}"
        async for step in download.fetch(client, url, store, Blob(file.path, ORIGIN, file.size, file.sha256)):
            yield step
    yield PullStep("writing manifest")
    manifest = Manifest(model=name.model, gguf=f"sha256:{file.sha256}",
                        source=f"hf.co/{name.repo_id}/{file.path}")
    await anyio.to_thread.run_sync(create.register, store, manifest)
    yield PullStep("success")

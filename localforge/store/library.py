"""Pulling from the Ollama library through the registry protocol, as `ollama pull` does.

`llama3.2`, `qwen2.5:7b` and `namespace/name:tag` name `/v2/{namespace}/{name}/manifests/{tag}` on
the registry (`registry`, default https://registry.ollama.ai); the namespace of a bare name is
`library`. The manifest lists layers by digest: the GGUF weights (resumable, via `download.fetch`)
and small text layers (template, system, params, license, messages), fetched whole and checked
against their digests. Progress is what Ollama streams: `pulling manifest`, a `pulling <digest>`
line per layer, `verifying sha256 digest`, `writing manifest`, `success`.

Library templates are Go templates written for Ollama's own engine. The GGUF's
`tokenizer.chat_template` is preferred when the file has one; otherwise the library template is
used if LocalForge's Go template subset renders it, else the built-in template for the family.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import anyio.to_thread
import httpx

from localforge import names
from localforge.errors import BackendFailed, BadRequest, NotFound
from localforge.gguf import gguf_info, gotemplate
from localforge.options import KNOWN, parse_modelfile_parameters
from localforge.store import create, download
from localforge.store.download import HEX, Blob, PullStep
from localforge.store.layout import Manifest, ModelStore

log = logging.getLogger(__name__)

DEFAULT_REGISTRY = "https://registry.ollama.ai"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json")
LAYER = "application/vnd.ollama.image."
MAX_TEXT_LAYER = 4 << 20  # a template or a license; anything bigger is not text meant for us
TEXT_LAYERS = ("template", "system", "params", "license", "messages")
_RESPONSE = re.compile(r"\{\{-?\s*\.Response\s*-?\}\}")


@dataclass(frozen=True, slots=True)
class LibraryName:
    namespace: str
    repo: str
    tag: str
    model: str  # the name it is registered under: `llama3.2:latest`, `ns/name:tag`

    @property
    def path(self) -> str:
        return f"{quote(self.namespace)}/{quote(self.repo)}"


@dataclass(frozen=True, slots=True)
class Layer:
    kind: str  # model, template, params, …; "config" for the image config
    blob: Blob


def library_name(name: str, registry: str) -> LibraryName:
    """`llama3.2` -> library/llama3.2:latest; `ns/x:t`; `registry.ollama.ai/ns/x:t` (or the
    configured registry's host). Anything else is a BadRequest naming the forms it takes."""
    parsed = names.parse(name)
    parts = list(parsed.parts)
    hosts = {DEFAULT_HOST, urlsplit(registry).netloc.lower()}
    if len(parts) == 3 and parts[0].lower() in hosts:
        parts = parts[1:]
    if len(parts) == 1:
        parts = [DEFAULT_NAMESPACE, parts[0]]
    if len(parts) != 2:
        raise BadRequest(f"invalid model name '{name}': pull takes name[:tag] or namespace/name[:tag] "
                         "from the Ollama library, or hf.co/{owner}/{repo}[:{quant}] from Hugging Face")
    namespace, repo = parts
    short = repo if namespace == DEFAULT_NAMESPACE else f"{namespace}/{repo}"
    return LibraryName(namespace.lower(), repo.lower(), parsed.tag, f"{short}:{parsed.tag}")


def _layers(document: Any, origin: str) -> list[Layer]:
    if not isinstance(document, dict) or not isinstance(document.get("layers"), list):
        raise BackendFailed(f"{origin} sent a manifest without layers")
    entries = [*document["layers"], *([document["config"]] if isinstance(document.get("config"), dict) else [])]
    layers = []
    for entry in entries:
        media = str(entry.get("mediaType", "")) if isinstance(entry, dict) else ""
        digest = str(entry.get("digest", "")) if isinstance(entry, dict) else ""
        size = entry.get("size") if isinstance(entry, dict) else None
        hexdigest = digest.removeprefix("sha256:")
        if not digest.startswith("sha256:") or not HEX.match(hexdigest) or not isinstance(size, int):
            raise BackendFailed(f"{origin} sent a manifest with a malformed layer: {entry!r:.200}")
        kind = media.removeprefix(LAYER) if media.startswith(LAYER) else "config"
        layers.append(Layer(kind, Blob(f"the {kind} layer", origin, size, hexdigest)))
    if [layer.kind for layer in layers].count("model") != 1:
        raise BadRequest("the manifest does not name exactly one GGUF model layer; LocalForge pulls "
                         "single-file GGUF models only")
    if any(layer.kind == "adapter" for layer in layers):
        raise BadRequest("this model carries a LoRA adapter layer, which LocalForge does not support")
    return layers


async def _manifest(client: httpx.AsyncClient, registry: str, name: LibraryName) -> list[Layer]:
    url = f"{registry}/v2/{name.path}/manifests/{quote(name.tag)}"
    origin = f"the registry at {registry}"
    try:
        response = await client.get(url, headers={"Accept": MANIFEST_TYPES})
    except httpx.HTTPError as exc:
        raise BackendFailed(f"cannot reach the registry at {registry}: {exc}") from exc
    if response.status_code in (401, 403, 404):
        raise NotFound(f"pull model manifest: file does not exist: model '{name.model}' is not in "
                       f"the library at {registry}")
    if response.status_code != 200:
        raise download.upstream_error(response, origin, f"the manifest of {name.model}")
    try:
        return _layers(response.json(), origin)
    except ValueError as exc:
        raise BackendFailed(f"{origin} sent a manifest that is not JSON") from exc


async def _fetch_text(client: httpx.AsyncClient, url: str, layer: Layer) -> tuple[bytes, PullStep]:
    """A small layer, whole in memory, checked against its digest."""
    blob = layer.blob
    if blob.size > MAX_TEXT_LAYER:
        raise BadRequest(f"{blob.label} is {blob.size} bytes, too big for a text layer")
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        raise BackendFailed(f"download of {blob.label} failed ({exc}); pull again") from exc
    if response.status_code != 200:
        raise download.upstream_error(response, blob.origin, blob.label)
    data = response.content
    if hashlib.sha256(data).hexdigest() != blob.sha256:
        raise BackendFailed(f"digest mismatch, file must be downloaded again: want {blob.digest}, "
                            f"got sha256:{hashlib.sha256(data).hexdigest()}")
    return data, blob.step(len(data))


def usable_template(library_template: str) -> str:
    """The library's Go template if LocalForge's Go subset renders it, cut at `{{ .Response }}` as
    Ollama cuts it for a prompt; "" when it cannot, so the family's built-in template applies."""
    cut = _RESPONSE.split(library_template, maxsplit=1)[0]
    question = "\x00question\x00"
    trial = {"System": "", "Prompt": question, "Response": "", "Suffix": "", "Tools": None,
             "Messages": [{"Role": "user", "Content": question}]}
    try:  # conditions are only checked when they are evaluated: render with and without a system
        rendered = gotemplate.render(cut, trial)
        gotemplate.render(cut, {**trial, "System": "system"})
    except BadRequest as exc:
        log.warning("the library template cannot be rendered here (%s); the family's built-in "
                    "template is used instead", exc.message)
        return ""
    return cut if question in rendered else ""


def _template(store: ModelStore, gguf: str, library_template: str) -> str:
    """The GGUF's own chat template wins; the library's is used only when the file has none."""
    if not library_template or gguf_info.read(store.blob_path(gguf)).chat_template:
        return ""
    return usable_template(library_template)


def _settings(texts: dict[str, bytes]) -> dict[str, Any]:
    def text(kind: str) -> str:
        return texts.get(kind, b"").decode("utf-8", errors="replace")

    try:
        params = json.loads(texts["params"]) if "params" in texts else {}
        messages = json.loads(texts["messages"]) if "messages" in texts else []
    except ValueError as exc:
        raise BackendFailed("the registry sent a params or messages layer that is not JSON") from exc
    if not isinstance(params, dict) or not isinstance(messages, list):
        raise BackendFailed("the registry sent a params or messages layer of the wrong shape")
    unknown = sorted(set(params) - set(KNOWN))
    if unknown:
        log.info("ignoring library parameters LocalForge does not know: %s", ", ".join(unknown))
    return {"template": text("template"), "system": text("system"), "license": text("license"),
            "parameters": parse_modelfile_parameters({k: v for k, v in params.items() if k in KNOWN}),
            "messages": [m for m in messages if isinstance(m, dict)]}


async def pull(store: ModelStore, registry: str, name: LibraryName) -> AsyncIterator[PullStep]:
    """Resolve, download, verify and register. An unknown model is an error before any output."""
    registry = registry.rstrip("/")
    async with download.client(registry) as client:
        layers = await _manifest(client, registry, name)
        yield PullStep("pulling manifest")
        texts: dict[str, bytes] = {}
        model = next(layer for layer in layers if layer.kind == "model")
        for layer in layers:
            url = f"{registry}/v2/{name.path}/blobs/{layer.blob.digest}"
            if layer.kind == "model":
                async for step in download.fetch(client, url, store, layer.blob, announce=False):
                    yield step
            elif layer.kind in (*TEXT_LAYERS, "config"):
                texts[layer.kind], step = await _fetch_text(client, url, layer)
                yield step
            else:  # a vision projector: llama.cpp would need it loaded beside the model
                log.warning("skipping the %s layer of %s: not supported", layer.kind, name.model)
    yield PullStep("verifying sha256 digest")  # each layer was checked as it arrived
    settings = _settings(texts)
    settings["template"] = await anyio.to_thread.run_sync(
        _template, store, model.blob.digest, settings["template"])
    yield PullStep("writing manifest")
    manifest = Manifest(model=name.model, gguf=model.blob.digest,
                        source=f"{urlsplit(registry).netloc}/{name.namespace}/{name.repo}:{name.tag}",
                        **settings)
    await anyio.to_thread.run_sync(create.register, store, manifest)
    yield PullStep("success")

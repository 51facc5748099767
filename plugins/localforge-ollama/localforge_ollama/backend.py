"""The upstream Ollama backend: the models of one or more Ollama servers, as LocalForge models.

Models are discovered from each upstream's /api/tags, with the /api/show details fetched once per
model digest. Upstreams offering a model under the same name form a fleet for it (see
`localforge.backends.fleet`): one Ollama per GPU behind one LocalForge.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from localforge import names
from localforge.backends.base import ModelCard, ModelDetails, Residency
from localforge.backends.fleet import Endpoint, Fleet, describe, guess_locality, json_body
from localforge.backends.upstreams import Discovered
from localforge.errors import BackendFailed, LocalForgeError
from localforge.inference import Embedding, Event, Inference
from localforge_ollama import native
from localforge_ollama.config import OllamaConfig, UpstreamConfig

log = logging.getLogger(__name__)
BACKEND = "ollama"
# what a failed listing can raise: what was known is kept
_LISTING_FAILED = (httpx.HTTPError, LocalForgeError, ValueError, LookupError, AttributeError)
# what one upstream offers: its /api/tags entries, and their /api/show by digest
Found = Discovered[dict[str, Any], dict[str, Any]]


def parameters(text: str) -> dict[str, Any]:
    """/api/show's `parameters` text ("stop   "<|im_end|>"" per line) as a dict."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        value = value.strip()
        if not key or not value:
            continue
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        if key == "stop":
            out.setdefault("stop", []).append(parsed)
        else:
            out[key] = parsed
    return out


class OllamaBackend:
    name = BACKEND

    def __init__(self, config: OllamaConfig) -> None:
        self.config = config
        self.upstreams = {u.label: u for u in config.upstreams}
        self.client = httpx.AsyncClient()
        self.fleet = Fleet(self.client, self._probe, config)
        for u in config.upstreams:
            self.fleet.add(Endpoint(u.label, u.url.rstrip("/"), "ollama upstream", u.api_key_env,
                                    u.timeout_s).configure(u.connect_timeout_s, u.first_token_s, u.idle_s))
        self._found: dict[str, Found] = {u.label: Discovered() for u in config.upstreams}

    def _endpoint(self, label: str) -> Endpoint:
        return self.fleet.members[label].endpoint

    def _probe(self, endpoint: Endpoint) -> httpx.Request:
        return self.client.build_request("GET", endpoint.base_url + "/api/version",
                                         headers=endpoint.headers())

    # discovery and /api/ps run in worker threads (registry scan, ps), so plain httpx is fine
    def _get(self, endpoint: Endpoint, path: str, body: Any = None) -> Any:
        method = "POST" if body is not None else "GET"
        response = httpx.request(method, endpoint.base_url + path, json=body,
                                 headers=endpoint.headers(),
                                 timeout=self.config.probe_timeout_s * 2)
        response.raise_for_status()
        return response.json()

    def _discover(self, upstream: UpstreamConfig) -> Found:
        found = self._found[upstream.label]
        endpoint = self._endpoint(upstream.label)

        def listing() -> list[dict[str, Any]]:
            tags = [t for t in self._get(endpoint, "/api/tags").get("models") or []
                    if not upstream.models or t.get("name") in upstream.models]
            for tag in tags:
                if tag.get("digest") not in found.known:
                    found.known[tag.get("digest", "")] = self._get(endpoint, "/api/show",
                                                                   {"model": tag["name"]})
            return tags

        found.refresh(listing, self.config.refresh_s, endpoint, _LISTING_FAILED, log)
        return found

    def _local(self, upstream: UpstreamConfig, upstream_name: str) -> str | None:
        text = upstream.prefix + upstream_name
        return names.canonical(text) if names.is_valid(text) else None

    def models(self) -> list[ModelCard]:
        cards: dict[str, ModelCard] = {}
        for upstream in self.config.upstreams:
            found = self._discover(upstream)
            for tag in found.items:
                name = self._local(upstream, tag.get("name", ""))
                if name is None:
                    continue
                card = cards.get(name.lower())
                if card is None:
                    show = found.known.get(tag.get("digest", ""), {})
                    card = cards[name.lower()] = self._card(name, tag, show)
                card.source["routes"][upstream.label] = tag["name"]
                card.model_info["localforge.upstreams"].append(upstream.label)
                if (upstream.locality or guess_locality(upstream.url)) == "remote":
                    card.locality = "remote"
        return list(cards.values())

    def _card(self, name: str, tag: dict[str, Any], show: dict[str, Any]) -> ModelCard:
        d = tag.get("details") or show.get("details") or {}
        model_info = dict(show.get("model_info") or {})
        arch = model_info.get("general.architecture", d.get("family", ""))
        model_info["localforge.upstreams"] = []
        return ModelCard(
            name=name, backend=BACKEND, size=int(tag.get("size") or 0), digest=tag.get("digest", ""),
            modified_at=native.timestamp(tag.get("modified_at")),
            details=ModelDetails(format=d.get("format") or "gguf", family=d.get("family") or "",
                                 families=d.get("families") or [], parameter_size=d.get("parameter_size") or "",
                                 quantization_level=d.get("quantization_level") or "",
                                 parent_model=d.get("parent_model") or ""),
            capabilities=show.get("capabilities") or tag.get("capabilities") or ["completion"],
            context_length=int(model_info.get(f"{arch}.context_length") or 0),
            model_info=model_info, template=show.get("template") or "",
            system=show.get("system") or "", parameters=parameters(show.get("parameters") or ""),
            license=show.get("license") or "", locality="local",
            modelfile_notes=[f"served by upstream Ollama as {tag.get('name')}"],
            source={"routes": {}})

    def _request(self, endpoint: Endpoint, path: str, body: dict[str, Any]) -> httpx.Request:
        return self.client.build_request("POST", endpoint.base_url + path, json=body,
                                         headers=endpoint.headers(), timeout=endpoint.timeout())

    async def infer(self, card: ModelCard, request: Inference) -> AsyncIterator[Event]:
        routes: dict[str, str] = card.source["routes"]

        def build(endpoint: Endpoint) -> httpx.Request:
            return self._request(endpoint, native.path(request),
                                 native.body(request, routes[endpoint.name]))

        def parse(endpoint: Endpoint, response: httpx.Response) -> AsyncIterator[Event]:
            return native.events(response, endpoint.label)

        async for event in self.fleet.call(list(routes), build, parse):
            yield event

    async def embed(self, card: ModelCard, texts: list[str], options: dict[str, Any],
                    truncate: bool = True) -> Embedding:
        routes: dict[str, str] = card.source["routes"]
        started = time.perf_counter_ns()

        def build(endpoint: Endpoint) -> httpx.Request:
            body = {"model": routes[endpoint.name], "input": texts, "truncate": truncate}
            return self._request(endpoint, "/api/embed", {**body, "options": options} if options else body)

        async def parse(endpoint: Endpoint, response: httpx.Response) -> AsyncIterator[Embedding]:
            async for data in json_body(endpoint, response):
                vectors = data.get("embeddings") if isinstance(data, dict) else None
                if not isinstance(vectors, list) or len(vectors) != len(texts):
                    raise BackendFailed(f"{endpoint.label} returned no embeddings for {len(texts)} inputs")
                yield Embedding(vectors=vectors, prompt_tokens=int(data.get("prompt_eval_count") or 0),
                                load_ns=int(data.get("load_duration") or 0),
                                total_ns=time.perf_counter_ns() - started)

        return await self.fleet.one(list(routes), build, parse)

    def footprint(self, card: ModelCard, options: dict[str, Any], embedding: bool) -> tuple[int, int]:
        return 0, 0  # the model lives upstream: no local memory to budget

    async def load(self, card: ModelCard, options: dict[str, Any],
                   embedding: bool | None = None) -> int:
        """Ask an upstream to load the model (Ollama's empty generate), as a client's preload
        would; embedding models and failures are left to the request itself."""
        if embedding or "completion" not in card.capabilities:
            return 0
        routes: dict[str, str] = card.source["routes"]

        def build(endpoint: Endpoint) -> httpx.Request:
            body: dict[str, Any] = {"model": routes[endpoint.name], "stream": False}
            return self._request(endpoint, "/api/generate", {**body, "options": options} if options else body)

        try:
            data = await self.fleet.one(list(routes), build, json_body)
        except (LocalForgeError, ValueError) as exc:
            log.info("preloading %s upstream failed: %s", card.name, exc)
            return 0
        return int(data.get("load_duration") or 0) if isinstance(data, dict) else 0

    async def unload(self, card: ModelCard, options: dict[str, Any] | None = None,
                     embedding: bool | None = None) -> None:
        """Every upstream of the model unloads it (Ollama's keep_alive 0); a down one is skipped."""
        for label, upstream_name in card.source["routes"].items():
            endpoint = self._endpoint(label)
            try:
                response = await self.client.send(self._request(
                    endpoint, "/api/generate", {"model": upstream_name, "keep_alive": 0, "stream": False}))
                await response.aclose()
            except (httpx.HTTPError, LocalForgeError) as exc:
                log.info("%s: could not unload %s: %s", endpoint.label, upstream_name, describe(exc))

    def resident(self) -> list[Residency]:
        """The upstreams' /api/ps, under our names (healthy upstreams only: a dead one would
        stall /api/ps for its timeout)."""
        out = []
        for upstream in self.config.upstreams:
            member = self.fleet.members[upstream.label]
            if not member.healthy:
                continue
            try:
                running = self._get(member.endpoint, "/api/ps").get("models") or []
            except (httpx.HTTPError, LocalForgeError, ValueError, AttributeError) as exc:
                log.info("%s: no /api/ps: %s", member.endpoint.label, describe(exc))
                continue
            for model in running:
                name = self._local(upstream, model.get("name", ""))
                if name is None:
                    continue
                out.append(Residency(name=name, size=int(model.get("size") or 0),
                                     size_vram=int(model.get("size_vram") or 0),
                                     context_length=int(model.get("context_length") or 0),
                                     expires_at=native.timestamp(model.get("expires_at"))))
        return out

    async def close(self) -> None:
        await self.client.aclose()

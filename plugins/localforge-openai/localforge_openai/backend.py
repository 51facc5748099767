"""The OpenAI-compatible backend: every model of every configured endpoint, as LocalForge models.

Models are discovered from each endpoint's `/models` and rediscovered every `refresh_s`. Endpoints
that offer a model under the same LocalForge name form a fleet for it (see `fleet`): two vLLM
boxes serving `qwen2.5:7b` are one model with two places to run.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from localforge import names
from localforge.backends.base import ModelCard, ModelDetails, Residency
from localforge.backends.fleet import Endpoint, Fleet, guess_locality, json_body
from localforge.backends.upstreams import Discovered
from localforge.errors import LocalForgeError
from localforge.inference import Embedding, Event, Inference
from localforge_openai import from_openai, to_openai
from localforge_openai.config import EndpointConfig, OpenAIConfig

log = logging.getLogger(__name__)
BACKEND = "openai"
_BAD = re.compile(r"[^A-Za-z0-9._/:-]+")
# what a failed listing can raise: the model list is kept, or the allow-list stands in
_LISTING_FAILED = (httpx.HTTPError, LocalForgeError, ValueError, LookupError, AttributeError, TypeError)


def local_name(upstream_id: str, prefix: str) -> str | None:
    """The LocalForge name of an upstream model id, or None when no valid name can be made.
    A file path (llama-cpp-python's id without an alias) becomes its file name."""
    text = upstream_id.strip()
    if text.startswith(("/", "~", ".")) or "\\" in text:
        text = re.split(r"[\\/]", text)[-1].removesuffix(".gguf")
    base, colon, tag = text.rpartition(":")
    text = base.replace(":", "-") + colon + tag if colon else text
    text = _BAD.sub("-", prefix + text).strip("-/")
    return names.canonical(text) if names.is_valid(text) else None


class OpenAIBackend:
    name = BACKEND

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.endpoints = {e.name: e for e in config.endpoints}
        self.client = httpx.AsyncClient()
        self.fleet = Fleet(self.client, self._probe, config)
        for e in config.endpoints:
            self.fleet.add(Endpoint(e.name, e.base_url.rstrip("/"), "openai endpoint",
                                    e.api_key_env, e.timeout_s).configure(
                                        e.connect_timeout_s, e.first_token_s, e.idle_s))
        # by endpoint: the upstream ids, and when each was first seen (shown as modified_at)
        self._found: dict[str, Discovered[str, datetime]] = {
            e.name: Discovered() for e in config.endpoints}

    def _probe(self, endpoint: Endpoint) -> httpx.Request:
        return self.client.build_request("GET", endpoint.base_url + "/models",
                                         headers=endpoint.headers())

    # discovery: models() runs in a worker thread (the registry scans there), so plain httpx is fine
    def _discover(self, config: EndpointConfig) -> list[str]:
        found = self._found[config.name]
        endpoint = self.fleet.members[config.name].endpoint

        def listing() -> list[str]:
            response = httpx.get(endpoint.base_url + "/models", headers=endpoint.headers(),
                                 timeout=self.config.probe_timeout_s * 2)
            response.raise_for_status()
            ids = [str(m["id"]) for m in response.json().get("data") or [] if m.get("id")]
            if config.models:
                ids = [i for i in ids if i in config.models]
            for i in ids:
                found.known.setdefault(i, datetime.now(UTC))
            return ids

        found.refresh(listing, self.config.refresh_s, endpoint, _LISTING_FAILED, log)
        # before the first success, the allow-list stands in, so a request for those models
        # gets an error naming the endpoint, not "not found"
        return found.items if found.ever else list(config.models)

    def models(self) -> list[ModelCard]:
        cards: dict[str, ModelCard] = {}
        for config in self.config.endpoints:
            for upstream_id in self._discover(config):
                name = local_name(upstream_id, config.prefix)
                if name is None:
                    log.warning("openai endpoint '%s': model id %r cannot be a model name",
                                config.name, upstream_id)
                    continue
                card = cards.get(name.lower())
                if card is None:
                    card = cards[name.lower()] = self._card(name, upstream_id, config)
                    card.modified_at = self._found[config.name].known.get(upstream_id)
                self._join(card, upstream_id, config)
        return list(cards.values())

    def _card(self, name: str, upstream_id: str, config: EndpointConfig) -> ModelCard:
        capabilities = config.capabilities or (
            ["embedding"] if "embed" in upstream_id.lower() else ["completion", "tools"])
        return ModelCard(
            name=name, backend=BACKEND, details=ModelDetails(format="openai", family="openai"),
            capabilities=list(capabilities), locality="local",
            model_info={"general.architecture": "openai", "localforge.upstream_id": upstream_id,
                        "localforge.endpoints": [], "localforge.input_price": 0.0,
                        "localforge.output_price": 0.0},
            modelfile_notes=[f"served by OpenAI-compatible endpoints; upstream id {upstream_id}"],
            source={"routes": {}})

    def _join(self, card: ModelCard, upstream_id: str, config: EndpointConfig) -> None:
        """Add an endpoint to a model's fleet; the model is as remote and as dear as its most
        remote and dearest endpoint, so a privacy or cost policy errs on the safe side."""
        card.source["routes"][config.name] = upstream_id
        card.model_info["localforge.endpoints"].append(config.name)
        if (config.locality or guess_locality(config.base_url)) == "remote":
            card.locality = "remote"
        for key, price in (("input", config.input_price), ("output", config.output_price)):
            field_name = f"localforge.{key}_price"
            card.model_info[field_name] = max(card.model_info[field_name], price)

    def _request(self, endpoint: Endpoint, path: str, body: dict[str, Any]) -> httpx.Request:
        return self.client.build_request("POST", endpoint.base_url + path, json=body,
                                         headers=endpoint.headers(),
                                         timeout=endpoint.timeout())

    async def infer(self, card: ModelCard, request: Inference) -> AsyncIterator[Event]:
        routes: dict[str, str] = card.source["routes"]
        path = "/chat/completions" if to_openai.uses_chat(request) else "/completions"
        stream = not request.tools

        def build(endpoint: Endpoint) -> httpx.Request:
            style = self.endpoints[endpoint.name].structured_output
            body = to_openai.body(request, routes[endpoint.name], card.system, style, stream)
            return self._request(endpoint, path, body)

        started = time.perf_counter_ns()

        async def parse(endpoint: Endpoint, response: httpx.Response) -> AsyncIterator[Event]:
            if stream:
                async for event in from_openai.stream(response, endpoint.label):
                    yield event
                return
            async for data in json_body(endpoint, response):
                for event in from_openai.whole(data, endpoint.label, started):
                    yield event

        async for event in self.fleet.call(list(routes), build, parse):
            yield event

    async def embed(self, card: ModelCard, texts: list[str], options: dict[str, Any],
                    truncate: bool = True) -> Embedding:
        routes: dict[str, str] = card.source["routes"]
        started = time.perf_counter_ns()

        def build(endpoint: Endpoint) -> httpx.Request:
            return self._request(endpoint, "/embeddings",
                                 {"model": routes[endpoint.name], "input": texts})

        async def parse(endpoint: Endpoint, response: httpx.Response) -> AsyncIterator[Embedding]:
            async for data in json_body(endpoint, response):
                yield from_openai.embedding(data, endpoint.label, len(texts))

        result = await self.fleet.one(list(routes), build, parse)
        result.total_ns = time.perf_counter_ns() - started
        return result

    def footprint(self, card: ModelCard, options: dict[str, Any], embedding: bool) -> tuple[int, int]:
        return 0, 0  # the model lives on the endpoint: no local memory to budget

    async def load(self, card: ModelCard, options: dict[str, Any],
                   embedding: bool | None = None) -> int:
        return 0  # the endpoint decides what it keeps loaded

    async def unload(self, card: ModelCard, options: dict[str, Any] | None = None,
                     embedding: bool | None = None) -> None:
        return None

    def resident(self) -> list[Residency]:
        return []  # OpenAI's API has no equivalent of /api/ps

    async def close(self) -> None:
        await self.client.aclose()


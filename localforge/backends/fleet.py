"""A fleet: the upstream endpoints that serve one logical model, and which one gets each request.

The least busy healthy endpoint gets the next request; ties go to the one that has served the
fewest, so even one-at-a-time traffic spreads. An endpoint that fails as a server fails (refused
connection, timeout, 502/503/504, a stream that breaks) is cooled down; when its cool-down has
passed it is probed with a cheap request before it gets traffic again, and every failed probe
doubles the cool-down. A request that failed before any of its answer arrived is retried on
another endpoint, or on the same one after a backoff (429 and 5xx), so an endpoint that dies loses
no request that had not started answering.

Both first-party network backends (OpenAI-compatible and upstream Ollama) use this module.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import httpx
import msgspec

from localforge.backends.base import Locality
from localforge.errors import BackendFailed, BadRequest, LocalForgeError, NotFound, ServerBusy, Unavailable

log = logging.getLogger(__name__)
# statuses that say the server, not the request, is in trouble
SERVER_DOWN = {502, 503, 504}


class FleetSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Knobs shared by every network backend's config section."""

    retries: int = 2  # extra attempts after the first, on 429/5xx or a dead endpoint
    backoff_s: float = 0.5  # first backoff; doubles per attempt, capped at max_backoff_s
    max_backoff_s: float = 10.0
    cooldown_s: float = 5.0  # first cool-down of a failed endpoint; doubles per failed probe
    max_cooldown_s: float = 300.0
    probe_timeout_s: float = 2.0
    refresh_s: float = 60.0  # how often the model lists are discovered again


@dataclass(eq=False)
class Endpoint:
    """One upstream server as the config names it. Its API key is only ever read from the
    environment at call time, so it never sits in LocalForge's state, logs or records."""

    name: str
    base_url: str
    kind: str  # "openai endpoint", "ollama upstream": how messages name it
    api_key_env: str | None = None
    timeout_s: float = 600.0
    connect_timeout_s: float = 5.0

    @property
    def label(self) -> str:
        parts = urlsplit(self.base_url)
        # never show userinfo: a URL may carry a password
        where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return f"{self.kind} '{self.name}' ({where})"

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise BackendFailed(f"{self.label} needs an API key: set the environment variable "
                                f"{self.api_key_env}")
        return key

    def headers(self) -> dict[str, str]:
        """The bearer header for this endpoint's key, read from the environment now; {} without one."""
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def scrub(self, text: str) -> str:
        """Upstream error text may echo the key (some APIs quote it back); cut it out."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return text.replace(key, "***") if key else text

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)


@dataclass(eq=False)
class Member:
    """An endpoint's health and load as the fleet sees it."""

    endpoint: Endpoint
    in_flight: int = 0
    served: int = 0
    cooldown_s: float = 0.0  # 0 = healthy
    cooled_until: float = 0.0  # monotonic seconds
    probing: bool = False
    last_error: str = ""

    @property
    def healthy(self) -> bool:
        return self.cooldown_s == 0.0

    @property
    def state(self) -> str:
        """healthy, cooling down (no traffic until its cool-down passes) or probing."""
        return "probing" if self.probing else "healthy" if self.healthy else "cooling down"

    def retry_in_s(self) -> float:
        """Seconds until a cooled-down endpoint is probed again; 0 when healthy."""
        return 0.0 if self.healthy else max(0.0, self.cooled_until - time.monotonic())

    def why_down(self) -> str:
        return (f"{self.endpoint.label} is down ({self.last_error}); it is cooled down and will "
                f"be probed again in {self.retry_in_s():.0f}s")


class BrokenAnswer(Exception):
    """An answer ended early without a transport error (a close-delimited body cut short)."""


Probe = Callable[[Endpoint], httpx.Request]
Build = Callable[[Endpoint], httpx.Request]


@dataclass(eq=False)
class Fleet:
    client: httpx.AsyncClient
    probe: Probe  # a cheap request that succeeds when the endpoint is up
    settings: FleetSettings = field(default_factory=FleetSettings)
    members: dict[str, Member] = field(default_factory=dict)

    def add(self, endpoint: Endpoint) -> None:
        self.members[endpoint.name] = Member(endpoint)

    def failed(self, member: Member, reason: str) -> None:
        s = self.settings
        member.cooldown_s = min(s.max_cooldown_s, member.cooldown_s * 2 or s.cooldown_s)
        member.cooled_until = time.monotonic() + member.cooldown_s
        member.last_error = reason
        log.warning("%s failed (%s); cooled down for %.0fs", member.endpoint.label, reason,
                    member.cooldown_s)

    def recovered(self, member: Member) -> None:
        if not member.healthy:
            log.warning("%s is back", member.endpoint.label)
        member.cooldown_s, member.last_error = 0.0, ""

    async def _probe(self, member: Member) -> bool:
        member.probing = True
        try:
            request = self.probe(member.endpoint)
            request.extensions["timeout"] = httpx.Timeout(self.settings.probe_timeout_s).as_dict()
            response = await self.client.send(request)
            await response.aclose()
            if response.status_code in SERVER_DOWN:
                raise httpx.HTTPStatusError("", request=request, response=response)
        except (httpx.HTTPError, LocalForgeError) as exc:
            self.failed(member, f"probe failed: {describe(exc)}")
            return False
        finally:
            member.probing = False
        self.recovered(member)
        return True

    async def pick(self, names: list[str], tried: set[str]) -> Member:
        """The least busy healthy endpoint among `names`, probing any whose cool-down is over."""
        candidates = [self.members[n] for n in names if n in self.members]
        now = time.monotonic()
        for member in candidates:
            if not member.healthy and not member.probing and member.cooled_until <= now:
                await self._probe(member)
        ready = [m for m in candidates if m.healthy and m.endpoint.name not in tried]
        ready = ready or [m for m in candidates if m.healthy]
        if not ready:
            raise Unavailable("; ".join(m.why_down() for m in candidates) or "no endpoint configured")
        return min(ready, key=lambda m: (m.in_flight, m.served))

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        s = self.settings
        delay = s.backoff_s * 2 ** attempt
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            delay = float(retry_after)
        return min(delay, s.max_backoff_s)

    @asynccontextmanager
    async def open(self, names: list[str], build: Build) -> AsyncIterator[tuple[Endpoint, httpx.Response]]:
        """Send a request to the best endpoint, retrying as the module doc says; yield the open
        (2xx) response. A transport error while the body is read cools the endpoint down and
        becomes a BackendFailed naming it."""
        tried: set[str] = set()
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            member = await self.pick(names, tried)
            endpoint = member.endpoint
            tried.add(endpoint.name)
            member.in_flight += 1
            try:
                response = await self.client.send(build(endpoint), stream=True)
            except httpx.TransportError as exc:
                member.in_flight -= 1
                self.failed(member, describe(exc))
                if attempt + 1 == attempts:
                    raise Unavailable(member.why_down()) from None
                continue
            except BaseException:
                member.in_flight -= 1
                raise
            if response.status_code < 400:
                try:
                    yield endpoint, response
                    member.served += 1
                    self.recovered(member)
                    return
                except (httpx.TransportError, BrokenAnswer) as exc:
                    self.failed(member, f"the answer broke off: {describe(exc)}")
                    raise BackendFailed(f"{endpoint.label} stopped in the middle of the answer "
                                        f"({describe(exc)}); it is cooled down") from None
                finally:
                    member.in_flight -= 1
                    with anyio.CancelScope(shield=True):
                        await response.aclose()
            try:
                message = endpoint.scrub(await upstream_message(response))
            except httpx.TransportError as exc:
                message = describe(exc)
            finally:
                member.in_flight -= 1
                with anyio.CancelScope(shield=True):
                    await response.aclose()
            status = response.status_code
            if status in SERVER_DOWN:
                self.failed(member, f"HTTP {status}")
            if status != 429 and status < 500:
                raise client_error(endpoint, status, message)
            if attempt + 1 == attempts:
                if status == 429:
                    raise ServerBusy(f"{endpoint.label} is rate limiting requests (429) after "
                                     f"{attempts} tries: {message}", retry_after=int(
                                         self._backoff(attempt, response.headers.get("retry-after"))) or 1)
                raise BackendFailed(f"{endpoint.label} failed with HTTP {status} after {attempts} "
                                    f"tries: {message}")
            delay = self._backoff(attempt, response.headers.get("retry-after"))
            log.info("%s answered %s; retrying in %.1fs", endpoint.label, status, delay)
            await anyio.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises


def describe(exc: BaseException) -> str:
    """A short reason for a transport error; httpx messages never include request headers."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def upstream_message(response: httpx.Response) -> str:
    """The error text an OpenAI-style (`{"error": {"message"}}`) or Ollama-style
    (`{"error": "..."}`) server sent, else the start of the body."""
    raw = (await response.aread()).decode(errors="replace")
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.strip()[:300] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error:
            return str(error)[:300]
    return raw.strip()[:300]


def client_error(endpoint: Endpoint, status: int, message: str) -> LocalForgeError:
    if status in (401, 403):
        # the upstream text for a bad key may quote part of it: say only which variable to fix
        where = f"the API key in {endpoint.api_key_env}" if endpoint.api_key_env else "the request"
        return BackendFailed(f"{endpoint.label} rejected {where} (HTTP {status})")
    if status == 404:
        return NotFound(f"{endpoint.label}: {message}")
    return BadRequest(f"{endpoint.label} rejected the request (HTTP {status}): {message}")


def guess_locality(base_url: str) -> Locality:
    """Loopback, private and link-local addresses are this machine or the LAN."""
    host = urlsplit(base_url).hostname or ""
    if host in ("localhost",) or host.endswith((".local", ".lan", ".internal")):
        return "local"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "remote"
    return "local" if address.is_private or address.is_loopback or address.is_link_local else "remote"

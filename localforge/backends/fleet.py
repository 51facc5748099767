"""A fleet: the upstream endpoints that serve one logical model, and which one gets each request.

The least busy healthy endpoint gets the next request; ties go to the one that has served the
fewest, so even one-at-a-time traffic spreads. An endpoint that fails as a server fails (refused
connection, a timeout, 502/503/504, a stream that breaks) is cooled down for `cooldown_s`; more
failures of requests that were in flight at the same time count once. When its cool-down has
passed it is probed with a cheap request before it gets traffic again, and only a failed probe
doubles the cool-down (up to `max_cooldown_s`), so a restarted endpoint is back after one probe.

Every attempt has three clocks, set per endpoint: `connect_timeout_s` to connect,
`first_token_s` from sending to the first piece of the answer (for a non-streamed answer, the
whole of it), and `idle_s` between two pieces. A request of which nothing has reached the client
yet, whatever went wrong (before or after the upstream's status line), is retried on another
endpoint, or on the same one after a backoff (429 and 5xx), up to `retries` times. After the
first piece, a failure ends the answer with an error naming the endpoint.

Both first-party network backends (OpenAI-compatible and upstream Ollama) use this module.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import httpx
import msgspec

from localforge.backends.base import Locality
from localforge.errors import BackendFailed, BadRequest, LocalForgeError, NotFound, ServerBusy, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
# the clocks of one attempt (see the module docstring); the config may set them per endpoint
CONNECT_TIMEOUT_S = 5.0
FIRST_TOKEN_S = 60.0
IDLE_S = 30.0
# statuses that say the server, not the request, is in trouble
SERVER_DOWN = {502, 503, 504}


class FleetSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Knobs shared by every network backend's config section."""

    retries: int = 2  # extra attempts after the first, on 429/5xx or a dead endpoint
    backoff_s: float = 0.5  # first backoff; doubles per attempt, capped at max_backoff_s
    max_backoff_s: float = 10.0
    cooldown_s: float = 5.0  # first cool-down of a failed endpoint; doubles per failed probe
    max_cooldown_s: float = 60.0
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
    timeout_s: float = 600.0  # a backstop on any one read; the clocks below come first
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    first_token_s: float = FIRST_TOKEN_S
    idle_s: float = IDLE_S

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

    def configure(self, connect_timeout_s: float | None, first_token_s: float | None,
                  idle_s: float | None) -> Endpoint:
        """Take the clocks a config entry sets; unset ones keep the defaults."""
        self.connect_timeout_s = connect_timeout_s or self.connect_timeout_s
        self.first_token_s = first_token_s or self.first_token_s
        self.idle_s = idle_s or self.idle_s
        return self


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

    def failed(self, member: Member, reason: str, probe: bool = False) -> None:
        """A request (or, with `probe`, a probe) failed on the endpoint. Requests that were in
        flight together fail together: once cooled down, more of them change nothing. Only a
        failed probe doubles the cool-down."""
        s = self.settings
        if not probe and not member.healthy:
            return
        member.cooldown_s = min(s.max_cooldown_s, member.cooldown_s * 2) if probe else s.cooldown_s
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
            self.failed(member, f"probe failed: {describe(exc)}", probe=True)
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

    async def call(self, names: list[str], build: Build,
                   parse: Callable[[Endpoint, httpx.Response], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Send a request to the best endpoint and yield what `parse` makes of its (2xx) answer,
        retrying and timing every attempt as the module doc says."""
        attempts = self.settings.retries + 1
        tried: set[str] = set()
        for attempt in range(attempts):
            member = await self.pick(names, tried)
            endpoint = member.endpoint
            tried.add(endpoint.name)
            last = attempt + 1 == attempts
            sent = False
            member.in_flight += 1
            try:
                items, status, message, retry_after = None, 0, "", None
                async with _Attempt(self.client, endpoint, build) as exchange:
                    try:
                        with anyio.fail_after(endpoint.first_token_s):
                            response = await exchange.send()
                            status = response.status_code
                            if status < 400:
                                items = parse(endpoint, response)
                                first = await anext(items, _END)
                            else:
                                message = endpoint.scrub(await upstream_message(response))
                                retry_after = response.headers.get("retry-after")
                        if items is not None:
                            item = first
                            while item is not _END:
                                yield item  # type: ignore[misc]
                                sent = True
                                with anyio.fail_after(endpoint.idle_s):
                                    item = await anext(items, _END)
                            member.served += 1
                            self.recovered(member)
                            return
                    except (httpx.TransportError, BrokenAnswer, TimeoutError) as exc:
                        reason = _reason(endpoint, exc, sent)
                        self.failed(member, reason)
                        if sent:
                            raise BackendFailed(f"{endpoint.label} stopped in the middle of the "
                                                f"answer ({reason}); it is cooled down") from None
                        if last:
                            raise Unavailable(f"{endpoint.label} failed before answering "
                                              f"({reason}) after {attempts} tries") from None
                        log.info("%s failed before answering (%s); trying again", endpoint.label, reason)
                        continue
                    finally:
                        if items is not None:
                            with anyio.CancelScope(shield=True):
                                await items.aclose()  # type: ignore[attr-defined]
            finally:
                member.in_flight -= 1
            if status in SERVER_DOWN:
                self.failed(member, f"HTTP {status}")
            if status != 429 and status < 500:
                raise client_error(endpoint, status, message)
            if last:
                if status == 429:
                    raise ServerBusy(f"{endpoint.label} is rate limiting requests (429) after "
                                     f"{attempts} tries: {message}",
                                     retry_after=int(self._backoff(attempt, retry_after)) or 1)
                raise BackendFailed(f"{endpoint.label} failed with HTTP {status} after {attempts} "
                                    f"tries: {message}")
            delay = self._backoff(attempt, retry_after)
            log.info("%s answered %s; retrying in %.1fs", endpoint.label, status, delay)
            await anyio.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises

    async def one(self, names: list[str], build: Build,
                  parse: Callable[[Endpoint, httpx.Response], AsyncIterator[T]]) -> T:
        """`call` for an answer that is one thing (an embedding, a non-streamed body)."""
        async for item in self.call(names, build, parse):
            return item
        raise BackendFailed("the upstream sent no answer")


_END: object = object()


class _Attempt:
    """One HTTP exchange with an endpoint, closed on the way out whatever happened."""

    def __init__(self, client: httpx.AsyncClient, endpoint: Endpoint, build: Build) -> None:
        self.client, self.endpoint, self.build = client, endpoint, build
        self.response: httpx.Response | None = None

    async def send(self) -> httpx.Response:
        self.response = await self.client.send(self.build(self.endpoint), stream=True)
        return self.response

    async def __aenter__(self) -> _Attempt:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.response is not None:
            with anyio.CancelScope(shield=True):
                await self.response.aclose()


def _reason(endpoint: Endpoint, exc: BaseException, sent: bool) -> str:
    if isinstance(exc, TimeoutError):
        return (f"no new piece of the answer for {endpoint.idle_s:g} s" if sent
                else f"no answer within {endpoint.first_token_s:g} s")
    return describe(exc)


async def json_body(endpoint: Endpoint, response: httpx.Response) -> AsyncIterator[Any]:
    """A `parse` for `Fleet.one`: the whole body as JSON."""
    raw = await response.aread()
    try:
        yield json.loads(raw) if raw else {}
    except ValueError:
        raise BackendFailed(f"{endpoint.label} answered with something that is not JSON") from None


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

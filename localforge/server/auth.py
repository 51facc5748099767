"""The door: with `api_keys` set, every endpoint but the liveness ones needs `Authorization:
Bearer KEY`. Keys are compared in constant time and never logged or echoed back."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from localforge.config import Settings
from localforge.errors import Unauthorized

log = logging.getLogger(__name__)

# `GET /` and `/api/version` answer without a key: clients probe them to see a server is there
PUBLIC = {"public": True}


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def key_matches(presented: str, keys: list[str]) -> bool:
    """Constant time for each key, and every key is tried, so timing tells nothing."""
    given = presented.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


def key_scope(key: str) -> str:
    """The prompt-cache scope of a key: a hash, so the key itself never reaches a runner."""
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else ""


def require_key(keys: list[str]) -> Guard:
    """A Litestar guard; handlers marked with `opt=PUBLIC` stay open."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if handler.opt.get("public"):
            return
        presented = presented_key(connection)
        if not presented:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' "
                               "(LocalForge has api_keys set)")
        if not key_matches(presented, keys):
            raise Unauthorized("invalid API key")

    return guard


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_open(settings: Settings) -> None:
    """A server anyone on the network can reach, with no key, should say so at start-up."""
    if settings.api_keys or is_loopback(settings.host):
        return
    log.warning("listening on %s:%d with no API key: anyone who can reach this port can run and "
                "delete models, pull new ones, read the routing history and spend the remote API "
                "keys configured here. Set api_keys in the config or LOCALFORGE_API_KEY.",
                settings.host, settings.port)

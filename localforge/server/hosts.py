"""DNS rebinding: a page of `attacker.example` whose name is made to resolve to 127.0.0.1 talks
to this server as its own origin, with no `Origin` header to refuse. What gives it away is the
`Host` header, which still names the attacker's domain. While the server listens on loopback, a
request addressed to a name that is not local is refused with 403 before it is routed, as
Ollama's `allowedHostsMiddleware` does.

Allowed, as in Ollama: no `Host` at all, any IP address literal that is loopback, private or
unspecified (an address literal cannot be rebound), `localhost` and `*.localhost`, `*.local`
and `*.internal`, this machine's host name; and beside those the host names of `origins` and
`allowed_hosts` (exact, or globs like `*.example.com`; `*` alone allows any). Bound to another
address (`0.0.0.0` in a container, a LAN address), the server is meant to be reached by names
it cannot know, so every `Host` is allowed, as Ollama does; `api_keys` guard it there.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Callable

from litestar.types import ASGIApp, Receive, Scope, Send

from localforge.server.auth import is_loopback
from localforge.server.origins import forbid

LOCAL_SUFFIXES = (".localhost", ".local", ".internal")


def host_name(header: str) -> str:
    """The name or address of a `Host` header, without the port, brackets or a trailing dot."""
    text = header.strip().lower()
    if text.startswith("["):  # [::1]:11434
        return text[1:].partition("]")[0]
    name, colon, port = text.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        text = name
    return text.rstrip(".")


def configured(origins: list[str], allowed_hosts: list[str]) -> list[str]:
    """Host-name patterns from the configured origins (their host part; a bare `*` origin, which
    lets any page call, does not open the door to any host name) and `allowed_hosts`."""
    patterns = [h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip()]
    for origin in origins:
        text = origin.strip()
        if not text or text == "*":
            continue
        # `https://*.example.com:8080/` -> `*.example.com` (a glob, which urlsplit cannot read)
        authority = (text.partition("://")[2] if "://" in text else text).partition("/")[0]
        host = host_name(authority.rpartition("@")[2])
        if host:
            patterns.append(host)
    return patterns


def is_local(host: str, own_name: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in ("", "localhost", own_name) or host.endswith(LOCAL_SUFFIXES)
    return address.is_loopback or address.is_private or address.is_unspecified or address.is_link_local


def allows(host: str, patterns: list[str], own_name: str) -> bool:
    return is_local(host, own_name) or any(fnmatch.fnmatchcase(host, p) for p in patterns)


def refuse_other_hosts(bound: str, origins: list[str], allowed_hosts: list[str]) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware factory (Litestar's `middleware=[...]`); a no-op when not bound to loopback."""
    patterns = configured(origins, allowed_hosts)
    own_name = socket.gethostname().lower()
    checking = is_loopback(bound)

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if checking and scope["type"] == "http":
                header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
                if not allows(host_name(header), patterns, own_name):
                    await forbid(scope, send, f"host {header[:200]!r} is not allowed: LocalForge listens "
                                 "on loopback and answers only requests addressed to a local name (a "
                                 "page on another domain could reach it by DNS rebinding); add the name "
                                 "to `allowed_hosts` in the config to use it", "host_not_allowed")
                    return
            await app(scope, receive, send)

        return middleware

    return wrap

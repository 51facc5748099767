"""What every network backend plugin does the same way beside its fleet: read its section of
localforge.toml, and keep what it discovered at each upstream between listings.

The first-party plugins (`localforge-openai`, `localforge-ollama`) both use it; a third-party
backend that fronts other servers can too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from localforge.backends.fleet import Endpoint, describe
from localforge.errors import BadRequest

S = TypeVar("S")
T = TypeVar("T")
D = TypeVar("D")


def parse_section(section: dict[str, Any], kind: type[S], name: str, what: str,
                  labels: Callable[[S], list[str]]) -> S:
    """The plugin's `[name]` section as `kind`; a malformed section, or two of its upstreams
    (`what`s) under one label, is a BadRequest that names the section."""
    try:
        config = msgspec.convert(section, kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid [{name}] configuration: {exc}") from exc
    found = labels(config)
    if len(set(found)) != len(found):
        raise BadRequest(f"invalid [{name}] configuration: {what} names must be unique")
    return config


@dataclass(slots=True)
class Discovered(Generic[T, D]):
    """What one upstream was last found to offer, and until when that stands."""

    items: list[T] = field(default_factory=list)  # its models, as its listing gave them
    known: dict[str, D] = field(default_factory=dict)  # kept across listings, by model id or digest
    fresh_until: float = 0.0
    ever: bool = False  # a listing has succeeded

    def refresh(self, listing: Callable[[], list[T]], refresh_s: float, endpoint: Endpoint,
                errors: tuple[type[Exception], ...], log: logging.Logger) -> None:
        """List the upstream's models again once the last listing is `refresh_s` old. A listing
        that fails with one of `errors` keeps what was known and is tried again within 10 s."""
        if time.monotonic() < self.fresh_until:
            return
        try:
            items = listing()
        except errors as exc:
            log.warning("%s: cannot list models: %s", endpoint.label, endpoint.scrub(describe(exc)))
            self.fresh_until = time.monotonic() + min(refresh_s, 10.0)
            return
        self.items, self.ever = items, True
        self.fresh_until = time.monotonic() + refresh_s

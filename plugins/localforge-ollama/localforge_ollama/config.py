"""The `[ollama]` section of localforge.toml: the Ollama servers LocalForge fronts.

    [[ollama.upstreams]]
    url = "http://gpu-box-1:11434"
    name = "gpu1"          # optional; default host:port
    prefix = ""            # optional: e.g. "gpu1/" makes "gpu1/llama3.2:3b"
    models = []            # optional allow-list of upstream names ("llama3.2:3b")

Upstreams that offer a model under the same name form a fleet for it.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from localforge.backends.fleet import FleetSettings
from localforge.backends.upstreams import parse_section


class UpstreamConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str
    name: str = ""
    prefix: str = ""
    models: list[str] = []
    locality: Literal["local", "remote"] | None = None  # None: guessed from the address
    api_key_env: str | None = None  # for an Ollama behind an authenticating proxy
    timeout_s: float = 600.0
    # the clocks of one attempt; unset: the fleet's defaults (5 s, 60 s, 30 s; see fleet.py)
    connect_timeout_s: float | None = None
    first_token_s: float | None = None
    idle_s: float | None = None

    @property
    def label(self) -> str:
        parts = urlsplit(self.url)
        return self.name or f"{parts.hostname}:{parts.port or 11434}"


class OllamaConfig(FleetSettings, kw_only=True, forbid_unknown_fields=True):
    upstreams: list[UpstreamConfig] = []


def parse(section: dict[str, Any]) -> OllamaConfig:
    return parse_section(section, OllamaConfig, "ollama", "upstream",
                         lambda config: [u.label for u in config.upstreams])

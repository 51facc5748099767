"""The `[openai]` section of localforge.toml: the OpenAI-compatible endpoints LocalForge fronts.

    [[openai.endpoints]]
    name = "openai"
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"   # the variable's name; the key itself never goes in a file
    locality = "remote"
    input_price = 0.15               # dollars per million prompt tokens
    output_price = 0.60              # dollars per million generated tokens
    models = ["gpt-4o-mini"]         # optional allow-list of upstream ids
    prefix = "openai/"               # optional: the model is then "openai/gpt-4o-mini"
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from localforge.backends.fleet import FleetSettings
from localforge.backends.upstreams import parse_section

Locality = Literal["local", "remote"]


class EndpointConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    base_url: str
    api_key_env: str | None = None
    locality: Locality | None = None  # None: local for loopback and private addresses
    input_price: float = 0.0
    output_price: float = 0.0
    models: list[str] = []
    prefix: str = ""
    timeout_s: float = 600.0
    # the clocks of one attempt; unset: the fleet's defaults (5 s, 60 s, 30 s; see fleet.py)
    connect_timeout_s: float | None = None
    first_token_s: float | None = None
    idle_s: float | None = None
    # how a JSON schema is asked for: OpenAI, vLLM and llama-server take "json_schema";
    # llama-cpp-python's server only knows {"type": "json_object", "schema": ...}
    structured_output: Literal["json_schema", "json_object"] = "json_schema"
    # capabilities shown for every model of this endpoint; default: guessed from the id
    capabilities: list[str] | None = None


class OpenAIConfig(FleetSettings, kw_only=True, forbid_unknown_fields=True):
    endpoints: list[EndpointConfig] = []


def parse(section: dict[str, Any]) -> OpenAIConfig:
    return parse_section(section, OpenAIConfig, "openai", "endpoint",
                         lambda config: [e.name for e in config.endpoints])

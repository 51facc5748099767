"""One typed settings object, built from defaults < TOML file < environment < command line.

Environment: every top-level setting but the tables (`models`, `router`, `profile`) has a
`LOCALFORGE_<FIELD>` that overrides it; a list (`origins`, `allowed_hosts`, `api_keys`) is
comma-separated, and `LOCALFORGE_API_KEY` is the one the CLI sends too. `OLLAMA_HOST`,
`OLLAMA_KEEP_ALIVE` and `OLLAMA_ORIGINS` are honoured as Ollama does, below the LOCALFORGE_ ones. Sections of the TOML
file that LocalForge itself does not know are kept in `plugins` for plugins to read.
"""

from __future__ import annotations

import hmac
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from localforge import names
from localforge.config.profile import ProfileSettings
from localforge.config.router import RouterSettings
from localforge.durations import keep_alive_seconds
from localforge.errors import BadRequest

DEFAULT_PORT = 11434


class ModelConfig(msgspec.Struct, forbid_unknown_fields=True):
    """A model declared in the config: a GGUF file on disk plus Modelfile-style settings."""

    name: str
    path: str
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = {}
    num_ctx: int | None = None
    # requests decoded together; unset: the server's `parallel`
    parallel: Annotated[int, msgspec.Meta(ge=1)] | None = None


class ApiKey(msgspec.Struct, forbid_unknown_fields=True):
    """An entry of `api_keys` with settings of its own; a bare string is a key with none.

    ```toml
    api_keys = ["sk-me", { key = "sk-batch", priority = "low", daily_budget = 0.5 }]
    ```
    """

    key: str
    # how its requests to `auto` meet a busy local model (route/overflow.py); an
    # X-LocalForge-Priority header may lower it but not raise it
    priority: Literal["high", "normal", "low"] = "normal"
    daily_budget: float | None = None  # dollars a day its requests may spend on remote models


class Settings(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = Path.home() / ".localforge"
    models_dir: Path | None = None
    keep_alive: str | float = "5m"
    # how many requests one model serves at once: a llama.cpp runner decodes them together in
    # one batch (slots), each with num_ctx of its own; OLLAMA_NUM_PARALLEL sets it too
    parallel: int = 1
    max_queue: int = 512
    # the schedule stage: memory for resident models ("8GiB", bytes; unset: NVML's free VRAM, or
    # 75% of available RAM), how long a request may starve, how long a loaded model is kept
    vram_budget: int | str | None = None
    ram_budget: int | str | None = None
    starvation_s: float = 30.0
    min_resident_s: float = 5.0
    schedule_policy: Literal["localforge", "fifo"] = "localforge"
    max_body_bytes: int = 64 * 1024 * 1024
    default_num_ctx: int = 4096
    n_threads: int | None = None
    # runner processes: "auto" turns llama.cpp's extra buffer types off for a model whose runner
    # crashed on its first decode (the AMX fault); "on" always, "off" never. A model that crashes
    # 3 times in 5 minutes is refused for runner_cooldown_s after its last crash.
    safe_mode: Literal["auto", "on", "off"] = "auto"
    runner_cooldown_s: float = 60.0
    demo_models: bool = True
    origins: list[str] = []
    # Host names a request may be addressed to while the server listens on loopback, beside
    # localhost, loopback and private addresses and the host names of `origins` (DNS rebinding)
    allowed_hosts: list[str] = []
    # when set, every endpoint but `GET /` and `/api/version` needs `Authorization: Bearer KEY`
    api_keys: list[str | ApiKey] = []
    hf_endpoint: str = "https://huggingface.co"
    # where `/api/pull` finds Ollama-library names (`llama3.2`, `ns/name:tag`)
    registry: str = "https://registry.ollama.ai"
    models: list[ModelConfig] = []
    # the `auto` model: presets, exploration, policies and per-model routing facts
    router: RouterSettings = msgspec.field(default_factory=RouterSettings)
    # the profile stage: private terms and patterns, task confidence floor, embedder
    profile: ProfileSettings = msgspec.field(default_factory=ProfileSettings)
    plugins: dict[str, Any] = {}

    @property
    def models_path(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def default_keep_alive_s(self) -> float:
        seconds = keep_alive_seconds(self.keep_alive)
        return 300.0 if seconds is None else seconds

    @property
    def keys(self) -> list[ApiKey]:
        """`api_keys` with every entry's settings (a bare string has the defaults)."""
        return [k if isinstance(k, ApiKey) else ApiKey(k) for k in self.api_keys]

    def key_settings(self, presented: str) -> ApiKey | None:
        """The settings of the key a request presented (already checked by the guard)."""
        found = None
        for entry in self.keys:  # every key compared in constant time, as the guard does
            if hmac.compare_digest(entry.key.encode(), presented.encode()):
                found = entry
        return found

    def section(self, name: str) -> dict[str, Any]:
        """A plugin's own section of the config file, `{}` when absent."""
        value = self.plugins.get(name, {})
        return value if isinstance(value, dict) else {}


_KNOWN = set(Settings.__struct_fields__) - {"plugins"}
# the tables have no environment form: a TOML table does not fit in one variable
NOT_IN_ENV = ("models", "router", "profile", "plugins")
ENV_FIELDS = tuple(f for f in Settings.__struct_fields__ if f not in NOT_IN_ENV)
_LISTS = ("origins", "allowed_hosts", "api_keys")


def parse_ollama_host(value: str) -> tuple[str, int]:
    """OLLAMA_HOST as Ollama reads it: `host`, `host:port`, `:port` or `http://host:port`."""
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise BadRequest(f"invalid OLLAMA_HOST {value!r}") from exc
    return host, port


def _env_keep_alive(value: str) -> str | float:
    """Ollama's variable takes a duration, or (unlike the API field) a bare number of seconds."""
    try:
        return float(value)
    except ValueError:
        return value


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if environ.get("OLLAMA_HOST"):
        values["host"], values["port"] = parse_ollama_host(environ["OLLAMA_HOST"])
    if environ.get("OLLAMA_NUM_PARALLEL"):
        values["parallel"] = environ["OLLAMA_NUM_PARALLEL"]
    if environ.get("OLLAMA_KEEP_ALIVE"):
        values["keep_alive"] = _env_keep_alive(environ["OLLAMA_KEEP_ALIVE"])
    if environ.get("OLLAMA_ORIGINS"):
        values["origins"] = environ["OLLAMA_ORIGINS"]
    if environ.get("HF_ENDPOINT"):  # as huggingface_hub reads it, e.g. for a mirror
        values["hf_endpoint"] = environ["HF_ENDPOINT"]
    if environ.get("LOCALFORGE_API_KEY"):
        values["api_keys"] = environ["LOCALFORGE_API_KEY"]
    for name in ENV_FIELDS:
        raw = environ.get(f"LOCALFORGE_{name.upper()}")
        if raw is not None:
            values[name] = raw
    for name in _LISTS:
        if isinstance(values.get(name), str):
            values[name] = [item.strip() for item in values[name].split(",") if item.strip()]
    return values


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str | Path):
        return Path(value).expanduser()
    raise NotImplementedError(f"cannot read {kind}")


def load(config_file: Path | None = None, overrides: dict[str, Any] | None = None,
         environ: dict[str, str] | None = None) -> Settings:
    """Build the settings; raise BadRequest with a readable message when something is wrong."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    path = config_file or (Path(env["LOCALFORGE_CONFIG"]) if env.get("LOCALFORGE_CONFIG") else None)
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise BadRequest(f"cannot read config file {path}: {exc}") from exc
        values.update({k: v for k, v in raw.items() if k in _KNOWN})
        values["plugins"] = {k: v for k, v in raw.items() if k not in _KNOWN}
    values.update(_from_env(env))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        settings = msgspec.convert(values, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid configuration: {exc}") from exc
    settings.default_keep_alive_s  # validates the duration early  # noqa: B018
    if any(not entry.key.strip() for entry in settings.keys):
        raise BadRequest("invalid configuration: an entry of api_keys is empty")
    for model in settings.models:
        names.parse(model.name)  # a bad name fails at start-up, not on every listing
    return settings

"""Settings from defaults, a TOML file, LOCALFORGE_* and Ollama's own variables."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from localforge import config, durations, names
from localforge.errors import BadRequest


def test_defaults_bind_loopback_on_ollamas_port() -> None:
    settings = config.load(environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", 11434)
    assert settings.default_keep_alive_s == 300


@pytest.mark.parametrize("value, expected", [
    ("0.0.0.0", ("0.0.0.0", 11434)), ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("http://localhost:9000", ("localhost", 9000)), (":7000", ("127.0.0.1", 7000)),
])
def test_ollama_host_is_read_as_ollama_reads_it(value: str, expected: tuple[str, int]) -> None:
    settings = config.load(environ={"OLLAMA_HOST": value})
    assert (settings.host, settings.port) == expected


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "lf.toml"
    file.write_text('port = 1000\nkeep_alive = "1m"\nparallel = 2\n[openai]\nkey_env = "X"\n')
    settings = config.load(file, environ={"LOCALFORGE_PORT": "2000", "OLLAMA_KEEP_ALIVE": "-1"})
    assert settings.port == 2000 and settings.parallel == 2
    assert settings.default_keep_alive_s == math.inf
    assert settings.section("openai") == {"key_env": "X"}
    assert config.load(file, {"port": 3000}, environ={"LOCALFORGE_PORT": "2000"}).port == 3000


def test_bad_config_is_a_readable_error(tmp_path: Path) -> None:
    file = tmp_path / "lf.toml"
    file.write_text("port = 'many'\n")
    with pytest.raises(BadRequest, match="port"):
        config.load(file, environ={})
    file.write_text("port = [\n")
    with pytest.raises(BadRequest, match="cannot read config"):
        config.load(file, environ={})
    with pytest.raises(BadRequest, match="duration"):
        config.load(environ={"OLLAMA_KEEP_ALIVE": "10 minutes"})
    assert config.load(environ={"OLLAMA_KEEP_ALIVE": "10"}).default_keep_alive_s == 10


@pytest.mark.parametrize("text, seconds", [
    ("5m", 300), ("1h30m", 5400), ("300ms", 0.3), ("0", 0), ("-1m", math.inf), ("1.5h", 5400),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert durations.keep_alive_seconds(text) == pytest.approx(seconds)


def test_numbers_are_seconds_and_negative_is_forever() -> None:
    assert durations.keep_alive_seconds(0.0) == 0
    assert durations.keep_alive_seconds(30) == 30
    assert durations.keep_alive_seconds(-1) == math.inf
    assert durations.keep_alive_seconds(None) is None
    with pytest.raises(BadRequest, match="missing unit"):
        durations.keep_alive_seconds("-1")


@pytest.mark.parametrize("name, canonical", [
    ("llama3", "llama3:latest"), ("llama3:8b", "llama3:8b"), ("hf.co/owner/repo:Q4_K_M", "hf.co/owner/repo:Q4_K_M"),
    ("library/x", "library/x:latest"),
])
def test_names_default_to_latest(name: str, canonical: str) -> None:
    assert names.canonical(name) == canonical


@pytest.mark.parametrize("name", ["../x", "a/../b", "/abs", "a//b", "x:", ":tag", "a b", "x:../y", ".hidden",
                                  "a/b/c/d/e"])
def test_names_that_could_escape_are_invalid(name: str) -> None:
    assert not names.is_valid(name)


def test_paths_from_the_file_and_the_environment_expand_home(tmp_path: Path) -> None:
    file = tmp_path / "lf.toml"
    file.write_text('data_dir = "~/lf-data"\n')
    assert config.load(file, environ={}).data_dir == Path.home() / "lf-data"
    settings = config.load(environ={"LOCALFORGE_DATA_DIR": str(tmp_path), "LOCALFORGE_MODELS_DIR": "~/m"})
    assert settings.data_dir == tmp_path and settings.models_path == Path.home() / "m"


def test_parallel_per_model_and_from_ollamas_variable(tmp_path: Path) -> None:
    toml = tmp_path / "lf.toml"
    toml.write_text('[[models]]\nname = "a"\npath = "/m/a.gguf"\nparallel = 4\n')
    settings = config.load(toml, environ={"OLLAMA_NUM_PARALLEL": "2"})
    assert settings.parallel == 2 and settings.models[0].parallel == 4
    toml.write_text('[[models]]\nname = "a"\npath = "/m/a.gguf"\nparallel = 0\n')
    with pytest.raises(BadRequest, match=r"models\[0\].parallel"):
        config.load(toml, environ={})
    with pytest.raises(BadRequest, match="parallel"):
        config.load(environ={"OLLAMA_NUM_PARALLEL": "many"})

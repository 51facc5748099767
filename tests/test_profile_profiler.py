"""Building a profile from the registered profilers, the built-in ones being a plugin like any."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from localforge import config, plugins
from localforge.errors import BadRequest
from localforge.hookspecs import hookimpl
from localforge.inference import Inference, Message
from localforge.profile.base import Profile
from localforge.profile.profiler import Profiling, request_text


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One data folder for the module, so the int8 embedder is built there once, not in ~."""
    return tmp_path_factory.mktemp("data")


class LanguageProfiler:
    name = "language"

    def profile(self, request: Inference, profile: Profile) -> None:
        profile.features["language"] = "fr" if "bonjour" in profile.text.lower() else "en"


class ThirdParty:
    @hookimpl
    def register_profilers(self, register: Callable[[Any], None]) -> None:
        register(LanguageProfiler())


def test_the_built_in_profilers_are_a_default_plugin_and_a_third_party_can_add_one(data_dir: Any) -> None:
    pm = plugins.make_manager(load_entry_points=False)
    hooks = {p["name"]: p["hooks"] for p in plugins.describe(pm)}["localforge.profile.plugin"]
    assert {"register_profilers", "register_embedders"} <= set(hooks)
    extra = ThirdParty()
    pm.register(extra)
    try:
        profiling = Profiling.from_plugins(pm, config.load(None, {"data_dir": data_dir}, environ={}))
    finally:
        pm.unregister(extra)
    assert [p.name for p in profiling.profilers] == ["tokens", "conversation", "sensitivity", "embedding",
                                                     "task", "language"]
    profile = profiling.profile(Inference(model="auto", kind="chat", messages=[
        Message("system", "Réponds en français."), Message("user", "Bonjour ! Solve for x: 2x + 3 = 11."),
    ]))
    assert profile.features["language"] == "fr"
    assert profile.task == "math" and profile.tokens > 10 and not profile.sensitive
    assert profile.embedding is not None and profile.embedding.shape == (384,)
    assert set(profile.timings_ns) == {p.name for p in profiling.profilers}


def test_configured_terms_reach_the_profiler(tmp_path: Any, data_dir: Any) -> None:
    path = tmp_path / "localforge.toml"
    path.write_text('[profile]\nsensitive_terms = ["Project Falcon"]\ntask_confidence_floor = 0.99\n')
    settings = config.load(path, {"data_dir": data_dir}, environ={})
    profiling = Profiling.from_plugins(plugins.make_manager(load_entry_points=False), settings)
    profile = profiling.profile(Inference(model="auto", kind="generate", prompt="Summarise project falcon"),
                                embedding=None)
    assert profile.sensitive and profile.sensitivity == ["term"]
    assert profile.task == "general"  # nothing is that certain


def test_an_unknown_embedder_is_a_clear_configuration_error(tmp_path: Any) -> None:
    path = tmp_path / "localforge.toml"
    path.write_text('[profile]\nembedder = "no-such-embedder"\n')
    with pytest.raises(BadRequest, match="embedder 'no-such-embedder' is not registered"):
        Profiling.from_plugins(plugins.make_manager(load_entry_points=False), config.load(path, environ={}))


def test_the_text_is_the_last_user_turn_then_the_system_prompt() -> None:
    chat = Inference(model="auto", kind="chat", messages=[
        Message("system", "Be brief."), Message("user", "first"), Message("assistant", "ok"),
        Message("user", "second")])
    assert request_text(chat) == "second\n\nBe brief."
    assert request_text(Inference(model="auto", kind="generate", prompt="p")) == "p"
    assert request_text(Inference(model="auto", kind="chat")) == ""


def test_profiling_runs_in_a_worker_thread_and_loads_in_the_background(data_dir: Any) -> None:
    import anyio

    profiling = Profiling.from_plugins(plugins.make_manager(load_entry_points=False),
                                       config.load(None, {"data_dir": data_dir}, environ={}))
    threads = profiling.warm()
    assert len(threads) == 2  # the task classifier and the embedder
    for thread in threads:
        thread.join(timeout=120)
    request = Inference(model="auto", kind="generate", prompt="Write a SQL query that counts orders per day.")
    profile = anyio.run(profiling.aprofile, request)
    assert profile.task == "coding" and profile.embedding is not None
    assert profiling.embed(["a", "b"]).shape == (2, 384)

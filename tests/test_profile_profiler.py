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


class LanguageProfiler:
    name = "language"

    def profile(self, request: Inference, profile: Profile) -> None:
        profile.features["language"] = "fr" if "bonjour" in profile.text.lower() else "en"


class ThirdParty:
    @hookimpl
    def register_profilers(self, register: Callable[[Any], None]) -> None:
        register(LanguageProfiler())


def test_the_built_in_profilers_are_a_default_plugin_and_a_third_party_can_add_one() -> None:
    pm = plugins.make_manager(load_entry_points=False)
    hooks = {p["name"]: p["hooks"] for p in plugins.describe(pm)}["localforge.profile.plugin"]
    assert {"register_profilers", "register_embedders"} <= set(hooks)
    extra = ThirdParty()
    pm.register(extra)
    try:
        profiling = Profiling.from_plugins(pm, config.load(None, environ={}))
    finally:
        pm.unregister(extra)
    assert [p.name for p in profiling.profilers] == ["tokens", "conversation", "sensitivity", "task",
                                                     "embedding", "language"]
    profile = profiling.profile(Inference(model="auto", kind="chat", messages=[
        Message("system", "Réponds en français."), Message("user", "Bonjour ! Solve for x: 2x + 3 = 11."),
    ]))
    assert profile.features["language"] == "fr"
    assert profile.task == "math" and profile.tokens > 10 and not profile.sensitive
    assert profile.embedding is not None and profile.embedding.shape == (384,)
    assert set(profile.timings_ns) == {p.name for p in profiling.profilers}


def test_configured_terms_reach_the_profiler(tmp_path: Any) -> None:
    path = tmp_path / "localforge.toml"
    path.write_text('[profile]\nsensitive_terms = ["Project Falcon"]\ntask_confidence_floor = 0.99\n')
    settings = config.load(path, environ={})
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

"""Every hook is documented: in its docstring and in the README's plugin section."""

from __future__ import annotations

import inspect
from pathlib import Path

from localforge import hookspecs, plugins

README = Path(__file__).parent.parent / "README.md"


def hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "localforge_spec")]


def test_there_are_hooks_for_every_extension_point() -> None:
    assert {"register_backends", "register_profilers", "register_scorers", "register_embedders",
            "startup", "shutdown", "request_complete"} <= set(hook_names())


def test_every_hook_has_a_docstring() -> None:
    for name in hook_names():
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"


def test_every_hook_is_documented_in_the_readme() -> None:
    text = README.read_text()
    for name in hook_names():
        assert f"`{name}" in text, f"hook {name} is missing from README.md"


def test_the_built_in_backend_is_a_plugin_like_any_other() -> None:
    pm = plugins.make_manager(load_entry_points=False)
    described = {p["name"]: p for p in plugins.describe(pm)}
    assert "register_backends" in described["localforge.backends.llamacpp_plugin"]["hooks"]

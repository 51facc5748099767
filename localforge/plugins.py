"""The plugin manager: built-in plugins first, then every package in the `localforge` entry-point group."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pluggy

from localforge import hookspecs

ENTRY_POINT_GROUP = "localforge"

DEFAULT_PLUGINS = (
    "localforge.backends.llamacpp_plugin",
    "localforge.profile.plugin",
    "localforge.route.judge",
)

T = TypeVar("T")


def make_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("localforge")
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        module = __import__(module_name, fromlist=["_"])
        pm.register(module, name=module_name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def collect(hook: Callable[..., Any], key: Callable[[T], str], **kwargs: Any) -> list[T]:
    """Run a register_* hook and return what plugins registered, first registration of a key wins."""
    found: dict[str, T] = {}

    def register(item: T) -> None:
        found.setdefault(key(item), item)

    hook(register=register, **kwargs)
    return list(found.values())


async def await_me_maybe(value: Any) -> Any:
    """Hooks may return a value, a callable or an awaitable; resolve whichever it is."""
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


async def call_all(results: Iterable[Any]) -> None:
    for result in results:
        await await_me_maybe(result)


def describe(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """What each installed plugin is and which hooks it implements (for `localforge plugins`)."""
    out = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        dist = next((d for p, d in pm.list_plugin_distinfo() if p is plugin), None)
        out.append({
            "name": name,
            "package": f"{dist.project_name} {dist.version}" if dist else "built-in",
            "hooks": hooks,
        })
    return out

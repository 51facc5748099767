"""What the controllers use, built by the app factory and opened in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import pluggy
from litestar import Request
from litestar.datastructures import State

from localforge.backends.registry import Registry
from localforge.config import Settings
from localforge.memory.db import Database
from localforge.pipeline import Pipeline
from localforge.route import overflow
from localforge.schedule.scheduler import Scheduler
from localforge.server import auth
from localforge.store.layout import ModelStore


@dataclass(slots=True)
class Services:
    settings: Settings
    pm: pluggy.PluginManager
    db: Database
    store: ModelStore
    registry: Registry
    scheduler: Scheduler
    pipeline: Pipeline


def provide_services(state: State) -> Services:
    return state.services  # type: ignore[no-any-return]


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def scope_of(request: Request, services: Services) -> str:
    """Whose prompt cache a request may reuse. With api_keys, its key's: another key's cached
    prefix is evaluated afresh, so `prompt_eval_count`/`cached_tokens` (and timings) say nothing
    of what another key asked. Without keys, one scope for all: the server has one user, and
    anyone who can reach it reads every request on the dashboard anyway."""
    return auth.key_scope(auth.presented_key(request)) if services.settings.api_keys else ""


PRIORITY_HEADER = "x-localforge-priority"


def standing_of(request: Request, services: Services) -> tuple[overflow.Priority, float | None]:
    """A request's priority under load and its key's daily remote budget. Without api_keys the
    `X-LocalForge-Priority` header decides (one user, who knows best); with them, the key's
    priority is the most the header may ask for, so a batch key cannot jump the queue."""
    header = request.headers.get(PRIORITY_HEADER)
    asked = overflow.priority(header)
    key = services.settings.key_settings(auth.presented_key(request)) if services.settings.api_keys else None
    if key is None:
        return asked, None
    if header is None:
        return key.priority, key.daily_budget
    lowest = max(overflow.PRIORITIES.index(key.priority), overflow.PRIORITIES.index(asked))
    return overflow.PRIORITIES[lowest], key.daily_budget

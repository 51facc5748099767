"""What the controllers use, built by the app factory and opened in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import pluggy
from litestar import Request
from litestar.datastructures import State

from localforge.config import Settings
from localforge.memory.db import Database
from localforge.pipeline import Pipeline
from localforge.route.registry import Registry
from localforge.schedule.scheduler import Scheduler
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

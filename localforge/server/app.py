"""The app factory: builds every resource from the settings and opens them in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pluggy
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide

from localforge import plugins
from localforge.backends.base import Backend
from localforge.backends.registry import Registry
from localforge.config import Settings
from localforge.memory.db import open_db
from localforge.memory.records import Recorder
from localforge.pipeline import Pipeline
from localforge.route import auto
from localforge.schedule.scheduler import Scheduler
from localforge.server import (
    errors,
    hosts,
    metrics,
    ollama_inference,
    ollama_manage,
    ollama_models,
    openai_api,
    origins,
    routing_api,
)
from localforge.server.auth import require_key, warn_if_open
from localforge.server.dashboard import api as dashboard_api
from localforge.server.dashboard import page as dashboard_page
from localforge.server.services import Services, provide_services
from localforge.store import create as making
from localforge.store.layout import ModelStore

log = logging.getLogger(__name__)

CORS_HEADERS = ["Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With", "X-LocalForge-Priority",
                "OpenAI-Beta", "x-stainless-arch", "x-stainless-async", "x-stainless-custom-poll-interval",
                "x-stainless-helper-method", "x-stainless-lang", "x-stainless-os",
                "x-stainless-package-version", "x-stainless-poll-helper", "x-stainless-retry-count",
                "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-timeout"]


def cors(settings: Settings) -> CORSConfig:
    return CORSConfig(allow_origins=settings.origins, allow_origin_regex=origins.allows(settings.origins).pattern,
                      allow_methods=["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"],
                      allow_headers=CORS_HEADERS, expose_headers=[
                          "X-LocalForge-Model", "X-LocalForge-Route", "X-LocalForge-Request-Id"])


def build_services(settings: Settings, pm: pluggy.PluginManager) -> Services:
    store = ModelStore(settings.models_path)
    store.ensure()
    backends: list[Backend] = plugins.collect(pm.hook.register_backends, lambda b: b.name,
                                              settings=settings)
    db = open_db(settings.data_dir / "localforge.db")
    registry = Registry(backends)
    scheduler = Scheduler.from_settings(settings)
    pipeline = Pipeline(registry, scheduler, Recorder(db), pm)
    pipeline.routing = registry.routes = auto.build(settings, pm, db, registry, scheduler)
    pipeline.evaluators = plugins.collect(pm.hook.register_evaluators, lambda e: e.name, settings=settings)
    return Services(settings, pm, db, store, registry, scheduler, pipeline)


async def prune_blobs_hourly(store: ModelStore) -> None:
    """Issue 15: uploaded blobs no model uses are deleted after an hour, not kept for ever."""
    while True:
        removed = await anyio.to_thread.run_sync(making.prune_blobs, store)
        if removed:
            log.info("deleted %d unused blob(s) from %s", len(removed), store.blobs)
        await anyio.sleep(3600)


def create_app(settings: Settings, pm: pluggy.PluginManager | None = None) -> Litestar:
    manager = pm or plugins.make_manager()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        warn_if_open(settings)
        services = build_services(settings, manager)
        app.state.services = services
        print(services.scheduler.budget.banner(), flush=True)
        await services.registry.refresh()
        await plugins.call_all(manager.hook.startup(state=app.state))
        async with anyio.create_task_group() as tg:
            tg.start_soon(services.scheduler.run)
            tg.start_soon(prune_blobs_hourly, services.store)
            services.pipeline.background = tg  # evaluators grade answers after they are sent
            services.registry.background = tg  # model listings, off the request path
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                if services.pipeline.routing is not None:  # before any await: the scope is cancelled
                    services.pipeline.routing.close()  # saves the vector index and the bandit
                await plugins.call_all(manager.hook.shutdown(state=app.state))
                for backend in services.registry.backends:
                    await backend.close()
                services.db.conn.close()

    return Litestar(
        route_handlers=[*ollama_models.ROUTES, *ollama_inference.ROUTES, *ollama_manage.ROUTES,
                        *openai_api.ROUTES, *metrics.ROUTES, *routing_api.ROUTES,
                        *dashboard_page.ROUTES, *dashboard_api.ROUTES],
        middleware=[hosts.refuse_other_hosts(settings.host, settings.origins, settings.allowed_hosts),
                    origins.refuse_other_origins(settings.origins)],
        guards=[require_key([k.key for k in settings.keys])] if settings.api_keys else [],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=errors.HANDLERS,  # type: ignore[arg-type]
        cors_config=cors(settings),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        debug=False,
        logging_config=None,  # the CLI configures logging; Litestar would reconfigure the root logger
    )

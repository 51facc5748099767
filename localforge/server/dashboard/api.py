"""GET /ui/api/{now,requests,requests/:id,routing,health}: the dashboard's reads, behind the same
key as the rest of the API. Writes go through the API itself: the unload button posts Ollama's
unload form to /api/generate, the thumbs post to /api/feedback."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import anyio.to_thread
from litestar import Request, get

from localforge.backends.fleet import Fleet
from localforge.bench.replay_cli import last_figures
from localforge.errors import NotFound
from localforge.route import auto
from localforge.server.dashboard import wire
from localforge.server.services import Services, scope_of

LATEST = 100  # requests in the list
SHARE_WINDOW_S = 86400  # the share of requests per model: the last day
BUCKETS = (60, 300, 900, 3600)  # the smallest that gives at most MAX_BUCKETS bars wins
MAX_BUCKETS = 24
MIN_BUCKETS = 12  # a chart of one bar says nothing of time: show the quiet buckets before it


def _iso(unix_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))


def request_row(row: dict[str, Any]) -> wire.RequestRow:
    eval_ns = row.get("eval_ns") or 0
    return wire.RequestRow(
        id=row["id"], created_at=row["created_at"], endpoint=row["endpoint"], client=row["client"],
        requested_model=row["requested_model"], served_model=row["served_model"], backend=row["backend"],
        status=row["status"], error=row["error"], done_reason=row["done_reason"],
        prompt_tokens=row["prompt_tokens"] or 0, eval_tokens=row["eval_tokens"] or 0,
        wait_ms=(row.get("wait_ns") or 0) / 1e6, load_ms=(row["load_ns"] or 0) / 1e6,
        total_ms=(row["total_ns"] or 0) / 1e6,
        tokens_per_s=row["eval_tokens"] / (eval_ns / 1e9) if eval_ns and row["eval_tokens"] else None,
        routed=auto.preset_of(row["requested_model"]) is not None)


@get("/ui/api/now", sync_to_thread=False)
def now(services: Services) -> wire.Now:
    scheduler = services.scheduler
    occupants = [wire.Occupant(o.model, o.key, o.state, o.footprint, o.in_flight, o.queued, o.parallel,
                               o.expires_in_s, o.in_use) for o in scheduler.occupants()]
    return wire.Now(budget_bytes=scheduler.policy.budget, used_bytes=scheduler.policy.used.total,
                    budget_source=scheduler.budget.source, gpu=scheduler.budget.gpu,
                    queued=sum(o.queued for o in occupants), in_flight=sum(o.in_flight for o in occupants),
                    models=occupants)


@get("/ui/api/requests")
async def requests(services: Services, model: str = "", status: str = "", limit: int = LATEST) -> wire.Requests:
    recorder = services.pipeline.recorder
    rows = await anyio.to_thread.run_sync(lambda: recorder.latest(max(1, min(limit, 1000)), model, status))
    models = await anyio.to_thread.run_sync(recorder.models)
    return wire.Requests([request_row(r) for r in rows], models)


def route_detail(services: Services, request_id: str, scope: str = "") -> tuple[wire.RouteDetail | None, str | None]:
    """A routed request's decision, and its prompt if one was kept: never a flagged one, and only
    for the key that sent it."""
    routing = services.pipeline.routing
    route = routing.memory.route(request_id) if routing is not None else None
    if route is None:
        return None, None
    history = routing.memory.outcome_history(route["id"]) if routing is not None else []
    sensitive = bool(route["sensitive"])
    detail = wire.RouteDetail(
        preset=route["preset"], model=route["chosen"], reason=route["reason"],
        explored=bool(route["explored"]), propensity=route["propensity"], task=route["task"],
        tokens=route["tokens"], sensitive=sensitive, profile=json.loads(route["profile"] or "{}"),
        candidates=json.loads(route["candidates"] or "[]"), removed=json.loads(route["removed"] or "{}"),
        outcomes=[wire.Outcome(o["model"], o["score"], o["kind"], _iso(o["created_at"])) for o in history])
    return detail, None if sensitive or route.get("scope", "") != scope else route["prompt"]


@get("/ui/api/requests/{request_id:str}")
async def request_detail(request: Request, services: Services, request_id: str) -> wire.RequestDetail:
    row = await anyio.to_thread.run_sync(services.pipeline.recorder.find, request_id)
    if row is None:
        raise NotFound(f"no request with id '{request_id}'")
    route, prompt = await anyio.to_thread.run_sync(route_detail, services, request_id, scope_of(request, services))
    return wire.RequestDetail(request_row(row), route, prompt)


def shares(services: Services, now_s: float) -> tuple[int, list[wire.ShareBucket], list[str]]:
    """The routed requests of the last day per served model, in as few buckets as show it."""
    rows = services.pipeline.recorder.served_over_time(now_s - SHARE_WINDOW_S, BUCKETS[0], auto.AUTO)
    if not rows:
        return BUCKETS[0], [], []
    span = now_s - rows[0][0]
    size = next((b for b in BUCKETS if span / b < MAX_BUCKETS), SHARE_WINDOW_S // MAX_BUCKETS)
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    overflow: dict[int, int] = defaultdict(int)
    for start, model, n, over in rows:  # an overflow is its own share, not its model's
        counts[start // size * size][model] += n - over
        overflow[start // size * size] += over
    last = int(now_s) // size * size
    first = min(min(counts), last - (MIN_BUCKETS - 1) * size)
    buckets = [wire.ShareBucket(_iso(b), {m: n for m, n in counts.get(b, {}).items() if n}, overflow.get(b, 0))
               for b in range(first, last + size, size)]
    return size, buckets, sorted({m for _, m, n, over in rows if n > over})


def saving(services: Services) -> wire.Saving:
    routing = services.pipeline.routing
    if routing is None:
        return wire.Saving(0, 0.0, 0.0, 0.0)
    routes, cost, best = routing.memory.saving_since(auto.day_start())
    return wire.Saving(routes, cost, best, best - cost)


@get("/ui/api/routing")
async def routing(services: Services) -> wire.RoutingSummary:
    size, buckets, models = await anyio.to_thread.run_sync(shares, services, time.time())
    routing = services.pipeline.routing
    spent = await routing.spent_today() if routing is not None else 0.0
    return wire.RoutingSummary(
        available=routing is not None, bucket_s=size, buckets=buckets, models=models, spent_today=spent,
        daily_budget=services.settings.router.daily_budget,
        saving=await anyio.to_thread.run_sync(saving, services),
        replay=await anyio.to_thread.run_sync(last_figures, services.settings.data_dir))


def endpoints(backend: object) -> list[wire.EndpointHealth]:
    """A network backend's fleet, if it has one."""
    fleet = getattr(backend, "fleet", None)
    if not isinstance(fleet, Fleet):
        return []
    return [wire.EndpointHealth(m.endpoint.name, m.endpoint.label, m.state, m.in_flight, m.served, m.last_error,
                                round(m.retry_in_s(), 1)) for m in fleet.members.values()]


@get("/ui/api/health")
async def health(services: Services) -> wire.Health:
    per_backend: dict[str, int] = defaultdict(int)
    for entry in await services.registry.entries():
        per_backend[entry.backend.name] += 1
    backends = [wire.BackendHealth(b.name, per_backend[b.name], endpoints(b)) for b in services.registry.backends]
    errors = await anyio.to_thread.run_sync(services.pipeline.recorder.errors_since, time.time() - 3600)
    meter = services.scheduler.meter
    seen = sorted(set(meter.crashes) | set(meter.loads) | set(meter.evictions))
    return wire.Health(
        backends=backends, errors_last_hour=[wire.ModelErrors(m, n, e) for m, n, e in errors],
        models=[wire.ModelCounts(m, meter.crashes.get(m, 0), meter.loads.get(m, 0), meter.evictions.get(m, 0))
                for m in seen],
        rejected=meter.rejected, canceled=meter.canceled)


ROUTES = [now, requests, request_detail, routing, health]

"""The dashboard's JSON: what the page reads every second, and what the tests read too.

Times are ISO 8601 in UTC; durations are milliseconds; sizes are bytes; money is dollars.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Occupant(msgspec.Struct):
    """A model configuration that holds memory or has requests waiting for it."""

    model: str
    key: str  # the model and its load options (another num_ctx is another configuration)
    state: str  # loading | ready | unloading | absent (queued, not loaded yet)
    bytes: int
    in_flight: int
    queued: int
    parallel: int
    expires_in_s: float | None  # None: kept resident until asked to go
    in_use: bool  # the keep-alive countdown starts when its last request is done


class Now(msgspec.Struct):
    budget_bytes: int
    used_bytes: int
    budget_source: str  # where the budget came from: vram_budget, nvml, available RAM…
    gpu: bool
    queued: int
    in_flight: int
    models: list[Occupant]


class RequestRow(msgspec.Struct):
    id: str
    created_at: str
    endpoint: str
    client: str
    requested_model: str
    served_model: str
    backend: str
    status: str  # ok | error | canceled
    error: str
    done_reason: str
    prompt_tokens: int
    eval_tokens: int
    wait_ms: float
    load_ms: float
    total_ms: float
    tokens_per_s: float | None
    routed: bool  # asked for `auto`: its detail has the routing decision


class Requests(msgspec.Struct):
    requests: list[RequestRow]
    models: list[str]  # every model asked for or served, for the filter


class Outcome(msgspec.Struct):
    model: str
    score: float
    kind: str  # feedback | error | length | repeat | an evaluator's name
    at: str


class RouteDetail(msgspec.Struct):
    """A routing decision as it was written: the same breakdown as POST /api/route."""

    preset: str
    model: str
    reason: str
    explored: bool
    propensity: float
    task: str
    tokens: int
    sensitive: bool
    profile: dict[str, Any]
    candidates: list[dict[str, Any]]
    removed: dict[str, str]
    outcomes: list[Outcome]


class RequestDetail(msgspec.Struct):
    request: RequestRow
    route: RouteDetail | None
    prompt: str | None  # only when `store_prompts` kept it, never for a request flagged private


class ShareBucket(msgspec.Struct):
    start: str
    counts: dict[str, int]  # served model -> requests, those that overflowed left out
    overflow: int = 0  # sent to a remote model because the local queue was too long


class Saving(msgspec.Struct):
    """Against always sending each request to its candidate of the highest expected quality."""

    routes: int
    cost: float
    best_cost: float
    saved: float


class RoutingSummary(msgspec.Struct):
    available: bool  # False: the auto model is off (no embedder)
    bucket_s: int
    buckets: list[ShareBucket]
    models: list[str]
    spent_today: float
    daily_budget: float | None
    saving: Saving
    replay: dict[str, Any] | None  # the figures of the last `bench replay --json`


class EndpointHealth(msgspec.Struct):
    name: str
    label: str
    state: str  # healthy | cooling down | probing
    in_flight: int
    served: int
    last_error: str
    retry_in_s: float


class BackendHealth(msgspec.Struct):
    name: str
    models: int
    endpoints: list[EndpointHealth]


class ModelErrors(msgspec.Struct):
    model: str
    errors: int
    last_error: str


class ModelCounts(msgspec.Struct):
    model: str
    crashes: int
    loads: int
    evictions: int


class Health(msgspec.Struct):
    backends: list[BackendHealth]
    errors_last_hour: list[ModelErrors]
    models: list[ModelCounts]  # runner crashes, loads and evictions since the server started
    rejected: int
    canceled: int

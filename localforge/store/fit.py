"""Which of a repository's GGUF files fit this machine, and which one a pull without a tag takes.

Every quantization of a repository is the same model, so one file's header says, for all of them,
how many layers there are and what the KV cache of the default context takes (`gguf_memory`, as
the scheduler estimates a load). Each file's weights are its own size, spread over the layers as
in the file whose header was read. What is placed is the scheduler's whole estimate: the weights,
the KV cache of `default_num_ctx` (or the model's own context, if shorter) for each of `parallel`
slots, and llama.cpp's compute and output buffers; "context" below is all but the weights.

A file fits the `GPU` when every layer goes to VRAM; `GPU+CPU 63%` when 63% of its layers do and
the rest run from RAM; `CPU` when none does (always, without a GPU); `too big` when it does not fit
VRAM and RAM together. The pools are the scheduler's (`vram_budget`, `ram_budget`, or what was
found at start-up), so a pull and the loads after it agree.

A pull without a tag takes (`pick`):
1. with a GPU, the largest file that fits it whole;
2. else the largest whose share on the GPU is at least `MIN_GPU_SHARE` (decoding is memory-bound:
   each layer in RAM reads its weights at RAM's speed, so below half on the GPU a larger file
   costs more speed than its quality gives back); if none keeps that share, the one that keeps
   the most (the smallest);
3. without a GPU, Ollama's default `Q4_K_M` when it fits RAM (on the CPU every extra byte of
   weights slows every token, and nothing offsets it), else the largest file that fits RAM;
4. nothing fits: an error naming the smallest file and what it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from localforge.errors import BadRequest
from localforge.gguf import gguf_info, gguf_memory
from localforge.resources.budget import size as shown
from localforge.resources.placement import Pools, Shape, place

if TYPE_CHECKING:
    from localforge.config import Settings

DEFAULT_QUANT = "Q4_K_M"  # what Ollama picks for `hf.co/{owner}/{repo}` without a tag
MIN_GPU_SHARE = 50  # percent of the layers a partly offloaded pick keeps on the GPU
# without a header: the context taken as a share of the weights (a 4096-token KV cache is about
# a tenth of a 4-bit model's weights for Llama 3 8B, Qwen 2.5 and Mistral), over a typical depth
APPROX_CONTEXT = 0.10
APPROX_LAYERS = 32


@dataclass(frozen=True, slots=True)
class Machine:
    """What a pulled model will be loaded into: the scheduler's pools, the default context and
    the slots a runner serves."""

    pools: Pools
    num_ctx: int
    slots: int = 1
    repacks: bool = False  # llama.cpp's AMX kernels keep a copy of the layers in RAM
    overhead: int = 0  # a runner's own VRAM beside its buffers, once the scheduler has measured it

    @classmethod
    def of(cls, settings: Settings, pools: Pools, overhead: int = 0) -> Machine:
        return cls(pools, settings.default_num_ctx, max(1, settings.parallel),
                   gguf_memory.cpu_has_amx() and settings.safe_mode != "on", overhead)

    @property
    def gpu(self) -> bool:
        return self.pools.vram > 0

    def describe(self) -> str:
        ram = f"{shown(self.pools.ram)} of RAM"
        return f"{shown(self.pools.vram)} of VRAM + {ram}" if self.gpu else f"{ram} (no GPU)"


@dataclass(frozen=True, slots=True)
class Header:
    """One file's header, which stands for every quantization of the repository; `info` is None
    when it could not be read, and `problem` says why (the estimate is then an approximation)."""

    info: gguf_info.GGUFInfo | None
    size: int  # of the file whose header this is
    problem: str = ""

    def parts(self, size: int, machine: Machine) -> tuple[Shape, int, int]:
        """(shape, weights, context) of a file of `size` bytes of this model."""
        if self.info is None:
            context = round(size * APPROX_CONTEXT)
            per_layer = (size + context) // APPROX_LAYERS
            return Shape(layers=(per_layer,) * APPROX_LAYERS), size, context
        info, own = self.info, self.info.tensors
        header_bytes = max(0, self.size - own.total)  # metadata and the tensor table
        factor = (size - header_bytes) / own.total if own.total else 1.0
        tensors = own if size == self.size else own.scaled(factor)
        n_ctx = max(64, min(machine.num_ctx, info.context_length or machine.num_ctx))
        params = {"n_ctx": n_ctx, "n_batch": min(512, n_ctx)}
        shape = gguf_memory.shape_of(info, params, machine.slots, repacks=machine.repacks, tensors=tensors)
        context = (len(tensors.layers) * gguf_memory.kv_bytes_per_layer(info, n_ctx) * machine.slots
                   + gguf_memory.compute_bytes(info, n_ctx, params["n_batch"])
                   + gguf_memory.output_bytes(info, params["n_batch"], machine.slots, False))
        return shape, tensors.total, context


@dataclass(frozen=True, slots=True)
class Fit:
    """Where one file would run."""

    quant: str
    size: int  # the file's bytes
    weights: int
    context: int
    gpu_layers: int | None  # None: not even VRAM and RAM together hold it
    layers: int  # every layer that can go to the GPU (the output layer counts)
    gpu: bool  # whether there is a GPU at all

    @property
    def share(self) -> int:
        """Percent of the layers on the GPU; 100 only when all are."""
        if not self.gpu_layers or not self.layers:
            return 0
        return 100 if self.gpu_layers >= self.layers else min(99, 100 * self.gpu_layers // self.layers)

    @property
    def where(self) -> str:
        if self.gpu_layers is None:
            return "too big"
        if self.share == 100:
            return "GPU"
        return "GPU+CPU" if self.share else "CPU"

    @property
    def label(self) -> str:
        """The fits column: `GPU`, `GPU+CPU 63%`, `CPU` or `too big`."""
        return f"GPU+CPU {self.share}%" if self.where == "GPU+CPU" else self.where

    @property
    def need(self) -> str:
        return f"{shown(self.weights)} of weights + {shown(self.context)} of context"


def fit(header: Header, quant: str, size: int, machine: Machine) -> Fit:
    shape, weights, context = header.parts(size, machine)
    layers = place(shape.with_overhead(machine.overhead) if machine.gpu else shape, machine.pools)
    return Fit(quant, size, weights, context, layers, shape.max_layers, machine.gpu)


def reason(chosen: Fit, machine: Machine, why: str = "", named: bool = False) -> str:
    """The line a pull prints about a file: what it needs, and where that goes."""
    vram, ram = shown(machine.pools.vram), shown(machine.pools.ram)
    quant = f"{chosen.quant} (as named)" if named else chosen.quant
    if chosen.where == "GPU":
        line = f"{quant}: {chosen.need} fits {vram} of VRAM"
    elif chosen.where == "GPU+CPU":
        line = (f"{quant}: {chosen.need} does not fit {vram} of VRAM; {chosen.share}% of "
                f"its layers run on the GPU, the rest on the CPU ({ram} of RAM)")
    elif chosen.where == "CPU":
        line = f"{quant}: {chosen.need} fits {ram} of RAM" + ("" if machine.gpu else " (no GPU)")
    else:
        line = f"{quant}: {chosen.need} is more than {machine.describe()}"
    return line + (f"; {why}" if why else "")


def pick(fits: Sequence[Fit], machine: Machine) -> tuple[int, str]:
    """The index of the file a pull without a tag takes, and the line that says why (the rule is
    the module's docstring); BadRequest when none fits."""
    runs = [i for i, f in enumerate(fits) if f.where != "too big"]
    if not runs:
        smallest = min(fits, key=lambda f: f.size)
        raise BadRequest(f"no file fits this machine ({machine.describe()}): the smallest, "
                         f"{smallest.quant}, needs {smallest.need}; name a quant to pull one anyway")
    def largest(indices: list[int]) -> int:
        return max(indices, key=lambda i: fits[i].size)

    if machine.gpu:
        whole = [i for i in runs if fits[i].where == "GPU"]
        if whole:
            return (chosen := largest(whole)), reason(fits[chosen], machine)
        enough = [i for i in runs if fits[i].share >= MIN_GPU_SHARE]
        if enough:
            chosen = largest(enough)
            why = (f"no file fits the GPU whole; the largest that keeps at least "
                   f"{MIN_GPU_SHARE}% of its layers there")
        else:
            chosen = max(runs, key=lambda i: (fits[i].share, -fits[i].size))
            why = "no file fits the GPU whole; the one that keeps the most layers there"
        return chosen, reason(fits[chosen], machine, why)
    default = [i for i in runs if fits[i].quant == DEFAULT_QUANT]
    if default:
        return default[0], reason(fits[default[0]], machine,
                                  "Ollama's default: on the CPU a larger file is slower per token")
    chosen = largest(runs)
    return chosen, reason(fits[chosen], machine, f"no {DEFAULT_QUANT} here; the largest file that fits")

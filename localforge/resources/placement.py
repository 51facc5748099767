"""Where a configuration's layers go: how many on the GPU, the rest in RAM.

llama.cpp offloads the *last* `n_gpu_layers` repeating layers; one more than the model's layer
count also puts the output layer on the GPU ("33/33 layers"). Each layer's KV cache lives with the
layer. The input embeddings always stay in RAM. llama.cpp reserves a compute buffer on the GPU as
soon as any layer is there, and one in RAM unless every layer is on the GPU. Each runner process
that uses the GPU also holds a fixed `overhead` there, beside its buffers: its CUDA context and
cuBLAS workspace (about 0.5 GB on an H200), the same for every model, measured once per GPU; like
the compute buffer it is counted where any layer is on the GPU. `Shape` holds those sizes (an
estimate from the GGUF, corrected once a load has been measured) and answers what a placement
takes from each pool, and how much slower it decodes than the whole model on the GPU.

Decoding is memory-bound: a token reads every weight once, so its time is the sum over the pools
of bytes / bandwidth. `cpu_speed` is RAM's bandwidth as a share of VRAM's (a consumer GPU reads
about 500 GB/s, dual-channel DDR5 about 60 GB/s, so about 0.12): a quarter of the layers in RAM
takes a model from 1x to about 2.8x the time per token.

Nothing here reads a clock or a device; the policies and the simulation call it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CPU_SPEED = 0.12  # RAM bandwidth / VRAM bandwidth on a gaming PC: ~60 GB/s against ~500 GB/s


@dataclass(slots=True, frozen=True)
class Pools:
    """Free (or total) bytes of VRAM and RAM; `vram` is 0 without a usable GPU."""

    vram: int
    ram: int

    def __add__(self, other: Pools) -> Pools:
        return Pools(self.vram + other.vram, self.ram + other.ram)

    def __sub__(self, other: Pools) -> Pools:
        return Pools(self.vram - other.vram, self.ram - other.ram)

    def holds(self, need: Pools) -> bool:
        return need.vram <= self.vram and need.ram <= self.ram

    @property
    def total(self) -> int:
        return self.vram + self.ram


@dataclass(slots=True, frozen=True)
class Shape:
    """What one configuration takes, part by part (bytes)."""

    layers: tuple[int, ...] = ()  # each repeating layer: its weights and its KV cache
    output: int = 0  # the output layer on the GPU: only with every repeating layer
    output_cpu: int = 0  # the output layer in RAM (less where it shares the input embeddings)
    host: int = 0  # always in RAM: input embeddings, logits, what a backend cannot split
    compute: int = 0  # llama.cpp's compute buffer, on each device that runs part of the graph
    overhead: int = 0  # the runner's own VRAM beside its buffers (CUDA context, cuBLAS workspace)
    repack: tuple[int, ...] = ()  # in RAM only: a CPU layer's extra copy for the CPU's kernels (AMX)
    output_repack: int = 0  # in RAM only: the output layer's such copy while it is on the CPU

    @classmethod
    def flat(cls, size: int) -> Shape:
        """A configuration with no layers to place (a plugin's model): all of it in RAM."""
        return cls(host=max(0, int(size)))

    @property
    def max_layers(self) -> int:
        """The `n_gpu_layers` that puts everything that can go on the GPU there."""
        return len(self.layers) + 1 if self.layers else 0

    def clamp(self, gpu_layers: int) -> int:
        return max(0, min(int(gpu_layers), self.max_layers))

    def _split(self, gpu_layers: int) -> tuple[int, int]:
        """(bytes of layers and output on the GPU, bytes of them in RAM)."""
        n, g = len(self.layers), self.clamp(gpu_layers)
        first_on_gpu = n - min(g, n)
        on_gpu, in_ram = sum(self.layers[first_on_gpu:]), sum(self.layers[:first_on_gpu])
        return (on_gpu + self.output, in_ram) if g > n else (on_gpu, in_ram + self.output_cpu)

    def _repacked(self, gpu_layers: int) -> int:
        """The extra copies the CPU's kernels keep of what stays in RAM."""
        n, g = len(self.layers), self.clamp(gpu_layers)
        return sum(self.repack[:n - min(g, n)]) + (0 if g > n else self.output_repack)

    def memory(self, gpu_layers: int) -> Pools:
        """What this placement takes from each pool."""
        g = self.clamp(gpu_layers)
        on_gpu, in_ram = self._split(g)
        everything = g > len(self.layers)  # every repeating layer and the output on the GPU
        return Pools(on_gpu + (self.compute + self.overhead if g else 0),
                     self.host + in_ram + self._repacked(g) + (0 if everything else self.compute))

    @property
    def total(self) -> int:
        return self.memory(0).total

    def slowdown(self, gpu_layers: int, cpu_speed: float = CPU_SPEED) -> float:
        """Time per token of this placement over the time with everything on the GPU (≥ 1)."""
        if not self.layers:
            return 1.0
        on_gpu, in_ram = self._split(gpu_layers)
        return (on_gpu + in_ram / cpu_speed) / max(1, on_gpu + in_ram)

    def with_overhead(self, overhead: int) -> Shape:
        return replace(self, overhead=max(0, int(overhead)))

    def corrected(self, gpu_layers: int, measured: Pools) -> Shape:
        """This shape corrected by what a load at `gpu_layers` measured (per pool): the layers
        and the compute buffer by the GPU's ratio where a GPU took part, else RAM's. The runner's
        overhead is no part of the ratio: it is the same for every model."""
        estimate = self.memory(gpu_layers)
        fixed = self.overhead if self.clamp(gpu_layers) else 0
        vram = (max(0, measured.vram - fixed) / (estimate.vram - fixed)
                if estimate.vram > fixed else 0.0)
        ram = measured.ram / estimate.ram if estimate.ram else 1.0
        scale = vram if vram > 0 else ram
        return Shape(tuple(round(b * scale) for b in self.layers), round(self.output * scale),
                     round(self.output_cpu * scale), round(self.host * ram), round(self.compute * scale),
                     self.overhead, tuple(round(b * ram) for b in self.repack),
                     round(self.output_repack * ram))


def place(shape: Shape, free: Pools, wanted: int | None = None, *, gpu: bool = True,
          partial: bool = True) -> int | None:
    """How many layers go on the GPU: `wanted` (the user's `num_gpu`) if it fits, else the most
    that fit in `free` with the rest in RAM; None if nothing fits. Without `partial` (all or
    nothing, as LocalForge did before) every layer goes on the GPU when there is one."""
    if wanted is not None or not partial:
        g = shape.clamp(shape.max_layers if wanted is None else wanted) if gpu else 0
        return g if free.holds(shape.memory(g)) else None
    for g in range(shape.max_layers, -1, -1):  # VRAM grows with g, RAM shrinks: the first fit wins
        need = shape.memory(g)
        if need.vram <= free.vram:
            return g if need.ram <= free.ram else None
    return None


def as_ollama_shows(shape: Shape, gpu_layers: int, used: Pools) -> Pools:
    """What `/api/ps` and `ps` show of a placement: llama.cpp keeps the input embeddings in RAM
    even with every layer offloaded, but Ollama shows such a model as all on the GPU (`size_vram`
    equal to `size`, `100% GPU`), and users read a split as partly offloaded. A negative
    `gpu_layers` is llama.cpp's "all"."""
    every = gpu_layers < 0 or shape.clamp(gpu_layers) == shape.max_layers
    return Pools(used.total, 0) if shape.layers and every and used.vram > 0 else used


def processor(used: Pools) -> str:
    """Where a resident model runs, as `ollama ps` prints it: `100% GPU`, `100% CPU`, or the split
    `48%/52% CPU/GPU`."""
    if used.total <= 0 or used.vram <= 0:
        return "100% CPU"
    if used.ram <= 0:
        return "100% GPU"
    cpu = round(100 * used.ram / used.total)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"

"""What a backend is: a source of models that can generate, chat and embed.

A backend registers through the `register_backends` hook. The server asks each backend for its
models (`ModelCard`s), and sends each request to the backend that owns the model it resolved.

Beyond the `Backend` protocol, a backend whose models take local memory tells the scheduler
about them. `LocalBackend` is the whole of that contract (the built-in llama.cpp backend keeps all
of it), but the scheduler asks for each part on its own, so a backend may offer only some, and
one that offers none is served as it is:

- `Budgeted.footprint`: what a configuration will take once loaded, and the context it resolves
  to; `load` and `unload` then take `options=` and `embedding=`, and `load` also `gpu_layers=`
  (the placement) when the footprint is a `Shape`. A network backend says 0: nothing to budget.
- `Slotted.parallel`: how many requests of the model it serves at once.
- `Watched.holds`: whether a configuration is still loaded (a runner that died between requests
  is noticed through it).
- `Measured.measured_memory`: what loading it really took from each pool.
- `OverheadMeasured.runner_overhead`: the VRAM each of its processes holds beside its buffers.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from localforge.inference import Embedding, Event, Inference
from localforge.resources.placement import Pools, Shape

Locality = Literal["local", "remote"]


@dataclass(slots=True)
class ModelDetails:
    format: str = "gguf"
    family: str = ""
    families: list[str] = field(default_factory=list)
    parameter_size: str = ""
    quantization_level: str = ""
    parent_model: str = ""


@dataclass(slots=True)
class ModelCard:
    """Everything the server shows about a model and needs to route to it."""

    name: str  # canonical, e.g. "smollm2:135m"
    backend: str
    size: int = 0
    digest: str = ""
    modified_at: datetime | None = None
    details: ModelDetails = field(default_factory=ModelDetails)
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    context_length: int = 0
    model_info: dict[str, Any] = field(default_factory=dict)
    template: str = ""
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    modelfile_notes: list[str] = field(default_factory=list)
    locality: Locality = "local"
    # backend-private data, e.g. the GGUF path; never sent to a client
    source: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class Residency:
    """A model loaded in memory, for /api/ps."""

    name: str
    size: int
    size_vram: int
    context_length: int
    expires_at: datetime | None  # None = forever


@runtime_checkable
class Backend(Protocol):
    name: str

    def models(self) -> list[ModelCard]:
        """The models this backend serves now."""

    def infer(self, card: ModelCard, request: Inference) -> AsyncIterator[Event]:
        """Stream Deltas then one Final for a chat or generate request."""

    async def embed(self, card: ModelCard, texts: list[str], options: dict[str, Any],
                    truncate: bool = True) -> Embedding:
        """Embed each text; vectors as the model produces them (the server normalises)."""

    async def load(self, card: ModelCard, options: dict[str, Any], *, embedding: bool = False,
                   gpu_layers: int | None = None) -> int:
        """Make the model resident; return the nanoseconds spent loading (0 if it was). Only a
        `Budgeted` backend is passed `embedding` (the embedding configuration of a chat model),
        and `gpu_layers` (how many layers go on the GPU) only when its footprint is a `Shape`."""

    async def unload(self, card: ModelCard, *, options: dict[str, Any] | None = None,
                     embedding: bool = False) -> None:
        """Release the model's memory: the configuration `options` and `embedding` name (passed
        only to a `Budgeted` backend), else every configuration of the model."""

    def resident(self) -> list[Residency]:
        """Models this backend holds in memory now (called in a worker thread, so a network
        backend may ask its upstream; expires_at None means the server's keep_alive decides)."""

    async def close(self) -> None:
        """Release everything at shutdown."""


@runtime_checkable
class Budgeted(Protocol):
    def footprint(self, card: ModelCard, options: dict[str, Any],
                  embedding: bool) -> tuple[int | Shape, int]:
        """What the configuration will take once loaded (a `Shape` splits it into layers to place
        between VRAM and RAM; bytes are all RAM), and the context it resolves to."""


@runtime_checkable
class Slotted(Protocol):
    def parallel(self, card: ModelCard) -> int:
        """How many requests of the model it serves at once."""


@runtime_checkable
class Watched(Protocol):
    def holds(self, card: ModelCard, options: dict[str, Any], embedding: bool) -> bool:
        """Whether the configuration is still loaded."""


@runtime_checkable
class Measured(Protocol):
    def measured_memory(self, card: ModelCard, options: dict[str, Any],
                        embedding: bool) -> Pools | None:
        """What loading the configuration really took from each pool (on the GPU, the runner's
        whole figure: its buffers and its overhead)."""


@runtime_checkable
class OverheadMeasured(Protocol):
    def runner_overhead(self) -> int | None:
        """The VRAM each of its processes holds beside its buffers (CUDA context, cuBLAS
        workspace), once measured; every placement then reserves it."""


@runtime_checkable
class LocalBackend(Backend, Budgeted, Slotted, Watched, Measured, OverheadMeasured, Protocol):
    """A backend whose models live in this machine's memory, with the whole contract the
    scheduler asks of one (the built-in llama.cpp backend)."""

"""The llama.cpp side of an embedding runner (generation runners use `slots.Slots`), and what
every runner shares: its request errors and safe mode.

This module runs only inside a runner process (`python -m localforge.runner`) and in the test
suite's upstream server, so a native fault in llama.cpp never reaches the LocalForge server.
"""

from __future__ import annotations

import time
from typing import Any, cast

import llama_cpp
import llama_cpp.llama_cpp as native
from llama_cpp import Llama

from localforge.runner.protocol import Embedded, Failed, Load


class RequestError(Exception):
    """A request the runner refuses; the server turns it into the client's error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def failed(self, request_id: int) -> Failed:
        return Failed(request_id, self.kind, self.message)  # type: ignore[arg-type]


def use_safe_mode() -> None:
    """Load models with llama.cpp's extra buffer types (the repacked-weights CPU path, e.g. AMX)
    off. That path segfaults on the first decode on some CPUs; the plain kernels do not."""
    default_params = native.llama_model_default_params

    def safe_params() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    native.llama_model_default_params = safe_params


def gpu_offload() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


class Engine:
    """A model loaded for embeddings through llama-cpp-python's `Llama`."""

    def __init__(self, load: Load) -> None:
        if load.safe_mode:
            use_safe_mode()
        started = time.perf_counter_ns()
        try:
            self.llm = Llama(**load.params)
        except (ValueError, RuntimeError, OSError) as exc:
            raise RequestError("backend", f"llama.cpp could not load the model: {exc}") from exc
        self.load_ns = time.perf_counter_ns() - started
        self.n_ctx = int(load.params["n_ctx"])

    def close(self) -> None:
        self.llm.close()

    def embed(self, request_id: int, texts: list[str], truncate: bool) -> Embedded:
        counts = [len(self.llm.tokenize(t.encode(), add_bos=True)) for t in texts]
        too_long = [n for n in counts if n > self.n_ctx]
        if too_long and not truncate:
            raise RequestError("bad_request",
                               f"input length {too_long[0]} exceeds the context length {self.n_ctx}")
        vectors = self.llm.embed(texts, normalize=False, truncate=True)
        return Embedded(request_id, [list(map(float, v)) for v in cast(list[list[float]], vectors)],
                        prompt_tokens=sum(min(n, self.n_ctx) for n in counts))

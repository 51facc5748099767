"""The llama.cpp side of a runner: one loaded model, generating and embedding on request.

This module runs only inside a runner process (`python -m localforge.runner`), so a native fault
in llama.cpp kills that process and never the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import llama_cpp
import llama_cpp.llama_cpp as native
from llama_cpp import Llama, LlamaGrammar
from llama_cpp.llama_grammar import JSON_GBNF

from localforge.runner.protocol import Done, Embedded, Failed, Infer, Load, Piece


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

    def grammar(self, schema: str | dict[str, Any] | None) -> LlamaGrammar | None:
        if schema in (None, ""):
            return None
        try:
            if schema == "json":
                return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            if isinstance(schema, dict):
                return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as exc:  # llama-cpp-python's schema converter raises bare Exceptions
            raise RequestError("bad_request", f"invalid format schema: {exc}") from exc
        raise RequestError("bad_request", "format must be \"json\" or a JSON schema object")

    def infer(self, request: Infer, cancelled: Callable[[], bool],
              before_decode: Callable[[], None]) -> Iterator[Piece | Done]:
        """Stream the answer's pieces, then its counts; stop after the token in flight when
        `cancelled()` turns true."""
        llm = self.llm
        grammar = self.grammar(request.format)
        tokens = llm.tokenize(request.text.encode(), add_bos=request.add_bos, special=True)
        if len(tokens) >= self.n_ctx:
            raise RequestError("bad_request", f"the prompt is {len(tokens)} tokens, more than the "
                               f"model's context of {self.n_ctx} (set options.num_ctx)")
        sampling = {**request.sampling,
                    "max_tokens": min(int(request.sampling["max_tokens"]), self.n_ctx - len(tokens))}
        before_decode()
        started = time.perf_counter_ns()
        chunks = cast(Iterator[Any], llm.create_completion(tokens, stream=True, grammar=grammar, **sampling))
        first_ns, finish = 0, "stop"
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                first_ns = first_ns or time.perf_counter_ns()
                finish = choice.get("finish_reason") or finish
                if choice.get("text"):
                    yield Piece(request.id, choice["text"])
                if cancelled():
                    finish = "cancel"
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        ended = time.perf_counter_ns()
        # llama.cpp evaluates every sampled token but the one that ended the answer by length
        n_eval = max(0, llm.n_tokens - len(tokens) + (1 if finish == "length" else 0))
        yield Done(request.id, "length" if finish == "length" else finish,
                   prompt_tokens=len(tokens), eval_tokens=n_eval,
                   prompt_ns=(first_ns or ended) - started, eval_ns=ended - (first_ns or ended),
                   context=[int(t) for t in llm.input_ids[: llm.n_tokens]] if request.want_context else None)

    def embed(self, request_id: int, texts: list[str], truncate: bool) -> Embedded:
        counts = [len(self.llm.tokenize(t.encode(), add_bos=True)) for t in texts]
        too_long = [n for n in counts if n > self.n_ctx]
        if too_long and not truncate:
            raise RequestError("bad_request",
                               f"input length {too_long[0]} exceeds the context length {self.n_ctx}")
        vectors = self.llm.embed(texts, normalize=False, truncate=True)
        return Embedded(request_id, [list(map(float, v)) for v in cast(list[list[float]], vectors)],
                        prompt_tokens=sum(min(n, self.n_ctx) for n in counts))

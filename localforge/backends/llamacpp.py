"""The built-in backend: GGUF models in-process through llama-cpp-python.

Blocking llama.cpp calls run in worker threads; a streamed answer pulls one token per thread call,
so when the client goes away the generation stops after at most one more token.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.to_thread
from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama, LlamaGrammar
from llama_cpp.llama_grammar import JSON_GBNF

from localforge import names
from localforge import options as opts
from localforge.backends import cards, gguf_info, prompts
from localforge.backends.base import ModelCard, Residency
from localforge.config import Settings
from localforge.errors import BackendFailed, BadRequest, LocalForgeError, Unsupported
from localforge.inference import Delta, Embedding, Event, Final, Inference
from localforge.store import demo
from localforge.store.layout import Manifest, ModelStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Loaded:
    llm: Llama
    card: ModelCard
    key: tuple[Any, ...]
    n_ctx: int
    embedding: bool
    # a Semaphore, not a Lock: a stream may be started in one task and finished in another
    lock: anyio.Semaphore = field(default_factory=lambda: anyio.Semaphore(1))


class LlamaCppBackend:
    name = cards.BACKEND

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ModelStore(settings.models_path)
        self._loaded: dict[tuple[Any, ...], Loaded] = {}
        self._demo: list[Manifest] | None = None

    # discovery
    def _manifests(self) -> list[Manifest]:
        found = [*self.store.list(), *self.store.loose_files()]
        found += [Manifest(model=names.canonical(m.name), gguf=str(Path(m.path).expanduser().resolve()),
                           template=m.template or "", system=m.system or "",
                           parameters=opts.parse_modelfile_parameters(
                               {**m.parameters, **({"num_ctx": m.num_ctx} if m.num_ctx else {})}),
                           source="config")
                  for m in self.settings.models]
        if self.settings.demo_models:
            if self._demo is None:
                self._demo = demo.demo_manifests(self.settings.data_dir / "demo")
            found += self._demo
        return found

    def models(self) -> list[ModelCard]:
        found: dict[str, ModelCard] = {}
        for manifest in self._manifests():
            path = self.store.gguf_path(manifest)
            try:
                card = cards.card_for(manifest, path)
            except (OSError, LocalForgeError) as exc:
                log.warning("skipping model %s: %s", manifest.model, exc)
                continue
            found.setdefault(card.name.lower(), card)
        return list(found.values())

    # residency
    def _load_params(self, card: ModelCard, options: dict[str, Any], embedding: bool) -> dict[str, Any]:
        n_ctx = int(options.get("num_ctx") or card.parameters.get("num_ctx")
                    or self.settings.default_num_ctx)
        n_ctx = max(64, min(n_ctx, card.context_length or n_ctx))
        params: dict[str, Any] = {
            "model_path": card.source["path"], "n_ctx": n_ctx, "verbose": False,
            "n_batch": int(options.get("num_batch", 512)),
            "n_gpu_layers": int(options.get("num_gpu", -1)),
            "n_threads": int(options.get("num_thread") or self.settings.n_threads or os.cpu_count() or 2),
            "use_mmap": bool(options.get("use_mmap", True)),
            "use_mlock": bool(options.get("use_mlock", False)),
            "embedding": embedding,
        }
        if embedding and "embedding" not in card.capabilities:
            params["pooling_type"] = LLAMA_POOLING_TYPE_MEAN
        return params

    def _key(self, card: ModelCard, options: dict[str, Any], embedding: bool) -> tuple[Any, ...]:
        return (card.name.lower(), card.source["path"], embedding, opts.load_key(options))

    async def _ensure(self, card: ModelCard, options: dict[str, Any], embedding: bool = False) -> tuple[Loaded, int]:
        key = self._key(card, options, embedding)
        if key in self._loaded:
            return self._loaded[key], 0
        params = self._load_params(card, options, embedding)
        started = time.perf_counter_ns()
        try:
            llm = await anyio.to_thread.run_sync(lambda: Llama(**params))
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendFailed(f"llama.cpp could not load model '{card.name}': {exc}") from exc
        loaded = Loaded(llm, card, key, params["n_ctx"], embedding)
        self._loaded[key] = loaded
        return loaded, time.perf_counter_ns() - started

    async def load(self, card: ModelCard, options: dict[str, Any], embedding: bool | None = None) -> int:
        """`embedding` picks the embedding configuration of a chat model (the scheduler asks)."""
        embedding = "embedding" in card.capabilities if embedding is None else embedding
        _, load_ns = await self._ensure(card, options, embedding)
        return load_ns

    async def unload(self, card: ModelCard, options: dict[str, Any] | None = None,
                     embedding: bool | None = None) -> None:
        """Unload every configuration of the model, or only the one `options`/`embedding` name."""
        for key in [k for k, v in self._loaded.items() if v.card.name.lower() == card.name.lower()]:
            if options is not None and key != self._key(card, options, bool(embedding)):
                continue
            loaded = self._loaded.pop(key)
            async with loaded.lock:
                await anyio.to_thread.run_sync(loaded.llm.close)

    def footprint(self, card: ModelCard, options: dict[str, Any],
                  embedding: bool = False) -> tuple[int, int]:
        """(bytes, context length) a configuration will take once loaded, from GGUF metadata:
        the weights, an f16 KV cache for its context, and llama.cpp's compute buffers."""
        params = self._load_params(card, options, embedding)
        n_vocab = int(card.model_info.get(f"{card.details.family}.vocab_size") or 32_000)
        overhead = 4 * 2**20 + 4 * n_vocab * 16  # graph and logits buffers, measured on CPU
        return card.size + _kv_cache_bytes(card, params["n_ctx"]) + overhead, params["n_ctx"]

    def resident(self) -> list[Residency]:
        out = []
        for loaded in self._loaded.values():
            size, _ = self.footprint(loaded.card, dict(loaded.key[3]), loaded.embedding)
            out.append(Residency(name=loaded.card.name, size=size, size_vram=0,
                                 context_length=loaded.n_ctx, expires_at=None))
        return out

    async def close(self) -> None:
        for loaded in list(self._loaded.values()):
            await self.unload(loaded.card)

    # inference
    def _prompt(self, card: ModelCard, request: Inference, info: gguf_info.GGUFInfo) -> str:
        template = prompts.ChatTemplate(card.template, card.source["template_source"],
                                        card.source["template_stop"])
        bos, eos = info.token("bos"), info.token("eos")
        if request.suffix:
            if "insert" not in card.capabilities:
                raise Unsupported(f"{card.name} does not support insert")
            return f"<fim_prefix>{request.prompt}<fim_suffix>{request.suffix}<fim_middle>"
        if request.kind == "chat":
            return prompts.render_chat(template, request, bos, eos)
        return prompts.render_generate(template, request, bos, eos)

    def _grammar(self, request: Inference) -> LlamaGrammar | None:
        schema: Any = request.format
        if request.tools and request.tool_choice not in (None, "auto", "none"):
            schema = prompts.tool_call_schema(request.tools, request.tool_choice)
        if schema in (None, ""):
            return None
        try:
            if schema == "json":
                return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            if isinstance(schema, dict):
                return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as exc:  # llama-cpp-python's schema converter raises bare Exceptions
            raise BadRequest(f"invalid format schema: {exc}") from exc
        raise BadRequest("format must be \"json\" or a JSON schema object")

    def _sampling(self, card: ModelCard, request: Inference, stops: list[str], n_ctx: int) -> dict[str, Any]:
        o = {**card.parameters, **request.options}
        num_predict = int(o.get("num_predict", -1))
        return {
            "max_tokens": num_predict if num_predict > 0 else n_ctx,
            "temperature": float(o.get("temperature", 0.8)),
            "top_p": float(o.get("top_p", 0.9)), "top_k": int(o.get("top_k", 40)),
            "min_p": float(o.get("min_p", 0.0)), "typical_p": float(o.get("typical_p", 1.0)),
            "repeat_penalty": float(o.get("repeat_penalty", 1.0)),
            "presence_penalty": float(o.get("presence_penalty", 0.0)),
            "frequency_penalty": float(o.get("frequency_penalty", 0.0)),
            "mirostat_mode": int(o.get("mirostat", 0)),
            "mirostat_tau": float(o.get("mirostat_tau", 5.0)),
            "mirostat_eta": float(o.get("mirostat_eta", 0.1)),
            "seed": int(o["seed"]) if int(o.get("seed", -1)) >= 0 else None,
            "stop": [*stops, *o.get("stop", [])],
        }

    async def infer(self, card: ModelCard, request: Inference) -> AsyncIterator[Event]:
        if "completion" not in card.capabilities:
            raise Unsupported(f"\"{card.name}\" does not support generate")
        if request.images or any(m.images for m in request.messages):
            raise Unsupported(f"{card.name} does not support images: it is a text-only model")
        if request.think not in (None, False) and "thinking" not in card.capabilities:
            raise Unsupported(f"\"{card.name}\" does not support thinking")
        if request.tools and "tools" not in card.capabilities:
            raise Unsupported(f"{card.name} does not support tools")
        info = gguf_info.read(Path(card.source["path"]))
        text = self._prompt(card, request, info)
        grammar = self._grammar(request)
        loaded, load_ns = await self._ensure(card, request.options)
        async with loaded.lock:
            async for event in self._stream(loaded, request, text, grammar, load_ns):
                yield event

    async def _stream(self, loaded: Loaded, request: Inference, text: str,
                      grammar: LlamaGrammar | None, load_ns: int) -> AsyncIterator[Event]:
        llm = loaded.llm
        template_has_bos = bool(loaded.card.template) and "bos_token" in loaded.card.template
        tokens = llm.tokenize(text.encode(), add_bos=not (request.raw or template_has_bos), special=True)
        if len(tokens) >= loaded.n_ctx:
            raise BadRequest(f"the prompt is {len(tokens)} tokens, more than the model's context "
                             f"of {loaded.n_ctx} (set options.num_ctx)")
        sampling = self._sampling(loaded.card, request, loaded.card.source["template_stop"], loaded.n_ctx)
        sampling["max_tokens"] = min(sampling["max_tokens"], loaded.n_ctx - len(tokens))
        started = time.perf_counter_ns()
        chunks = cast(Generator[Any, None, None],
                      llm.create_completion(tokens, stream=True, grammar=grammar, **sampling))
        first_ns = 0
        finish = "stop"
        collected: list[str] = []
        buffering = bool(request.tools)
        try:
            while True:
                chunk = await anyio.to_thread.run_sync(next, chunks, None)
                if chunk is None:
                    break
                choice = chunk["choices"][0]
                first_ns = first_ns or time.perf_counter_ns()
                piece = choice.get("text") or ""
                finish = choice.get("finish_reason") or finish
                collected.append(piece)
                if buffering and _may_be_tool_call("".join(collected)):
                    continue
                if buffering:
                    piece, buffering = "".join(collected), False
                if piece:
                    yield Delta(text=piece)
        finally:
            # shielded: on a client disconnect this runs inside a cancelled scope
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(chunks.close)
        ended = time.perf_counter_ns()
        answer = "".join(collected)
        if request.tools:
            rest, calls = prompts.parse_tool_calls(answer, request.tools)
            if buffering and (rest or calls):
                yield Delta(text=rest, tool_calls=calls)
        # llama.cpp evaluates every sampled token but the one that ended the answer by length
        n_eval = max(0, llm.n_tokens - len(tokens) + (1 if finish == "length" else 0))
        yield Final(
            done_reason="length" if finish == "length" else "stop",
            prompt_tokens=len(tokens), eval_tokens=n_eval, load_ns=load_ns,
            prompt_ns=(first_ns or ended) - started, eval_ns=ended - (first_ns or ended),
            context=None if request.raw or request.kind == "chat"
            else [int(t) for t in llm.input_ids[: llm.n_tokens]],
        )

    async def embed(self, card: ModelCard, texts: list[str], options: dict[str, Any],
                    truncate: bool = True) -> Embedding:
        loaded, load_ns = await self._ensure(card, options, embedding=True)
        started = time.perf_counter_ns()
        async with loaded.lock:
            counts = [len(loaded.llm.tokenize(t.encode(), add_bos=True)) for t in texts]
            too_long = [n for n in counts if n > loaded.n_ctx]
            if too_long and not truncate:
                raise BadRequest(f"input length {too_long[0]} exceeds the context length {loaded.n_ctx}")
            vectors = await anyio.to_thread.run_sync(
                lambda: loaded.llm.embed(texts, normalize=False, truncate=True))
        return Embedding(vectors=[list(map(float, v)) for v in vectors],
                         prompt_tokens=sum(min(n, loaded.n_ctx) for n in counts), load_ns=load_ns,
                         total_ns=time.perf_counter_ns() - started + load_ns)


def _may_be_tool_call(text: str) -> bool:
    """While tools are offered, hold back an answer that may turn out to be a tool call."""
    head = text.lstrip()
    return not head or "<tool_call>".startswith(head[:11]) or head.startswith(("<tool_call>", "{"))


def _kv_cache_bytes(card: ModelCard, n_ctx: int) -> int:
    """f16 K and V for every layer: 2 x layers x kv_heads x head_dim x context x 2 bytes."""
    arch = card.details.family
    info = card.model_info
    layers = int(info.get(f"{arch}.block_count") or 0)
    heads = int(info.get(f"{arch}.attention.head_count") or 1)
    kv_heads = int(info.get(f"{arch}.attention.head_count_kv") or heads)
    head_dim = int(info.get(f"{arch}.attention.key_length")
                   or int(info.get(f"{arch}.embedding_length") or 0) // max(heads, 1))
    return 2 * layers * kv_heads * head_dim * n_ctx * 2

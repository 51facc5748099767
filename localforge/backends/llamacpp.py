"""The built-in backend: GGUF models through llama-cpp-python, each resident configuration in a
runner process of its own (`localforge.runner`).

The server renders prompts and keeps the books; runners load and decode. A runner that dies is a
`RunnerCrashed` error for the requests it held, and the model is simply no longer resident: the
next request loads it again. A runner that dies on its very first decode is restarted with
llama.cpp's extra buffer types off (safe mode: the AMX repacking path segfaults on some Xeons),
and the model stays in safe mode, across restarts too, until llama-cpp-python changes; that crash
heals itself and does not count as one. A model whose runner crashes `CRASH_LIMIT` times in
`CRASH_WINDOW_S` is refused until `runner_cooldown_s` after its last crash. One configuration
has at most one load in progress: concurrent requests for it wait for that load.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from localforge import names
from localforge import options as opts
from localforge.backends import cards, grammar_limits
from localforge.backends.base import ModelCard, Residency
from localforge.backends.gpu_overhead import RunnerOverhead, buffers_on_gpu
from localforge.config import Settings
from localforge.errors import BadRequest, LocalForgeError, Unavailable, Unsupported
from localforge.gguf import gguf_info, gguf_memory, prompts
from localforge.inference import Delta, Embedding, Event, Final, Inference, RunnerCost
from localforge.resources import budget
from localforge.resources.placement import Pools, Shape, as_ollama_shows
from localforge.runner.client import Runner, describe_exit
from localforge.runner.protocol import Done, Infer, Load, Piece
from localforge.runner.safe_models import SafeModels
from localforge.store import demo
from localforge.store.layout import Manifest, ModelStore

log = logging.getLogger(__name__)
LLAMA_POOLING_TYPE_MEAN = 1  # llama.h; the server never imports llama_cpp itself
CRASH_LIMIT = 3
CRASH_WINDOW_S = 300.0
CHARS_PER_TOKEN = 64


@dataclass(slots=True)
class Loaded:
    runner: Runner
    card: ModelCard
    key: tuple[Any, ...]
    n_ctx: int
    embedding: bool
    base_rss: int  # the runner's memory before the model: the interpreter and llama.cpp
    gpu_layers: int  # the n_gpu_layers it was loaded with (-1: all)
    buffers: dict[str, int]  # what llama.cpp allocated, "kind:device" -> bytes

    @property
    def gpu_offload(self) -> bool:
        return self.runner.loaded.result().gpu_offload


class LlamaCppBackend:
    name = cards.BACKEND

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ModelStore(settings.models_path)
        self._loaded: dict[tuple[Any, ...], Loaded] = {}
        self._loading: dict[tuple[Any, ...], anyio.Lock] = {}  # one load at a time per configuration
        self._demo: list[Manifest] | None = None
        self._crashes: dict[str, deque[float]] = {}  # model -> monotonic times of its crashes
        self._safe_paths = SafeModels(settings.data_dir / "safe-mode.json")  # crashed on a first decode
        self._overhead = RunnerOverhead(settings.data_dir / "gpu-overhead.json")
        self._cpu: anyio.CapacityLimiter | None = None  # made on first use, inside the event loop

    def _cpu_limiter(self) -> anyio.CapacityLimiter:
        """Templates render in at most two worker threads: a slow one never starves the rest."""
        if self._cpu is None:
            self._cpu = anyio.CapacityLimiter(2)
        return self._cpu

    # discovery
    def _manifests(self) -> list[Manifest]:
        found = [*self.store.list(), *self.store.loose_files()]
        for m in self.settings.models:
            try:
                found.append(Manifest(
                    model=names.canonical(m.name), gguf=str(Path(m.path).expanduser().resolve()),
                    template=m.template or "", system=m.system or "",
                    parameters=opts.parse_modelfile_parameters(
                        {**m.parameters, **({"num_ctx": m.num_ctx} if m.num_ctx else {})}),
                    source="config"))
            except LocalForgeError as exc:  # one bad [[models]] entry must not hide the others
                log.warning("skipping configured model %s: %s", m.name, exc.message)
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
            card.model_info["localforge.safe_mode"] = self._safe_mode(card)
            found.setdefault(card.name.lower(), card)
        return list(found.values())

    # residency
    def _load_params(self, card: ModelCard, options: dict[str, Any], embedding: bool,
                     gpu_layers: int | None = None) -> dict[str, Any]:
        n_ctx = int(options.get("num_ctx") or card.parameters.get("num_ctx")
                    or self.settings.default_num_ctx)
        n_ctx = max(64, min(n_ctx, card.context_length or n_ctx))
        # llama-cpp-python sizes a logits buffer by the batch asked for, not the one it uses
        n_batch = min(int(options.get("num_batch", 512)), n_ctx)
        params: dict[str, Any] = {
            "model_path": card.source["path"], "n_ctx": n_ctx, "verbose": False,
            "n_batch": n_batch,
            "n_gpu_layers": int(options.get("num_gpu", -1)) if gpu_layers is None else gpu_layers,
            "n_threads": int(options.get("num_thread") or self.settings.n_threads or os.cpu_count() or 2),
            "use_mmap": bool(options.get("use_mmap", True)),
            "use_mlock": bool(options.get("use_mlock", False)),
            "embedding": embedding,
        }
        if embedding and "embedding" not in card.capabilities:
            params["pooling_type"] = LLAMA_POOLING_TYPE_MEAN
        return params

    def parallel(self, card: ModelCard) -> int:
        """How many requests the model's runner decodes together: its `[[models]]` entry's
        `parallel`, else the server's."""
        for model in self.settings.models:
            if model.parallel and names.canonical(model.name).lower() == card.name.lower():
                return model.parallel
        return max(1, self.settings.parallel)

    def _key(self, card: ModelCard, options: dict[str, Any], embedding: bool) -> tuple[Any, ...]:
        """A configuration: the model, its file, and its load options with the context resolved
        (the default `num_ctx` asked for, or not asked for, is one configuration)."""
        context = self._load_params(card, options, embedding)["n_ctx"]
        return (card.name.lower(), card.source["path"], embedding, opts.load_key({**options, "num_ctx": context}))

    def _safe_mode(self, card: ModelCard) -> bool:
        if self.settings.safe_mode != "auto":
            return self.settings.safe_mode == "on"
        return card.source.get("path") in self._safe_paths

    def _refuse_if_crashing(self, card: ModelCard) -> None:
        crashes = self._crashes.get(card.name.lower())
        now = time.monotonic()
        while crashes and now - crashes[0] > CRASH_WINDOW_S:
            crashes.popleft()
        if crashes and len(crashes) >= CRASH_LIMIT:
            wait = crashes[-1] + self.settings.runner_cooldown_s - now
            if wait > 0:
                raise Unavailable(f"model '{card.name}' crashed {len(crashes)} times in "
                                  f"{CRASH_WINDOW_S / 60:.0f} minutes; it is refused for "
                                  f"{wait:.0f} s more (see the server log for the cause)")

    async def _ensure(self, card: ModelCard, options: dict[str, Any], embedding: bool = False,
                      gpu_layers: int | None = None) -> tuple[Loaded, int]:
        key = self._key(card, options, embedding)
        if key in self._loaded:
            return self._loaded[key], 0
        async with self._loading.setdefault(key, anyio.Lock()):
            if key in self._loaded:  # loaded while this request waited for the lock
                return self._loaded[key], 0
            return await self._start(card, options, embedding, gpu_layers, key)

    async def _start(self, card: ModelCard, options: dict[str, Any], embedding: bool, gpu_layers: int | None,
                     key: tuple[Any, ...]) -> tuple[Loaded, int]:
        self._refuse_if_crashing(card)
        params = self._load_params(card, options, embedding, gpu_layers)
        if embedding and 256 < params["n_ctx"] < 512 and params["n_batch"] > 256:
            # measured: llama.cpp corrupts its heap embedding with such a context and batch
            raise BadRequest(f"option \"num_ctx\" {params['n_ctx']} cannot be used for embeddings "
                             "with a batch over 256: use num_ctx 256 or less, 512 or more, "
                             "or num_batch 256")
        safe = self._safe_mode(card)
        started = time.perf_counter_ns()
        slots = 1 if embedding else self.parallel(card)
        runner = await Runner.start(card.name, Load(params, safe_mode=safe, parallel=slots),
                                    on_exit=lambda r: self._runner_ended(key, r))
        if safe:
            log.info("%s runs in safe mode: llama.cpp's extra buffer types are off", card.name)
        answer = runner.loaded.result()
        loaded = Loaded(runner, card, key, params["n_ctx"], embedding, answer.base_rss,
                        params["n_gpu_layers"], answer.buffers)
        self._loaded[key] = loaded
        if answer.gpu_offload:  # on every runner: cuBLAS takes its workspace at a first decode
            self._overhead.measure((r.runner.pid, r.buffers) for r in self._loaded.values()
                                   if r.runner.pid is not None)
        return loaded, time.perf_counter_ns() - started

    def _runner_ended(self, key: tuple[Any, ...], runner: Runner) -> None:
        loaded = self._loaded.get(key)
        if loaded is not None and loaded.runner is runner:
            del self._loaded[key]
        if runner.stopping:
            return
        first_decode = not runner.answered and runner.started_answers > 0
        if first_decode and self.settings.safe_mode == "auto" and key[1] not in self._safe_paths:
            self._safe_paths.add(key[1])
            runner.healed = True
            if loaded is not None:  # the registry's card: /api/show says so from now on
                loaded.card.model_info["localforge.safe_mode"] = True
            log.warning("%s crashed on its first decode (%s); it is restarted in safe mode (llama.cpp's "
                        "extra buffer types off) from now on", runner.label, describe_exit(runner.returncode))
            return  # healed: not a crash towards the model's limit
        log.warning("%s", runner.crash_report())
        self._crashes.setdefault(key[0], deque()).append(time.monotonic())

    async def load(self, card: ModelCard, options: dict[str, Any], embedding: bool | None = None,
                   gpu_layers: int | None = None) -> int:
        """`embedding` picks the embedding configuration of a chat model, `gpu_layers` how many
        layers go on the GPU (the scheduler's placement; else the `num_gpu` option, else all)."""
        embedding = "embedding" in card.capabilities if embedding is None else embedding
        _, load_ns = await self._ensure(card, options, embedding, gpu_layers)
        return load_ns

    async def unload(self, card: ModelCard, options: dict[str, Any] | None = None,
                     embedding: bool | None = None) -> None:
        """Unload every configuration of the model, or only the one `options`/`embedding` name."""
        for key in [k for k, v in self._loaded.items() if v.card.name.lower() == card.name.lower()]:
            if options is not None and key != self._key(card, options, bool(embedding)):
                continue
            loaded = self._loaded.pop(key)
            await loaded.runner.stop()

    def holds(self, card: ModelCard, options: dict[str, Any], embedding: bool = False) -> bool:
        """Whether a live runner holds this configuration (the scheduler notices idle crashes)."""
        return self._key(card, options, embedding) in self._loaded

    def runner_overhead(self) -> int | None:
        """Bytes of VRAM each runner holds beside its buffers (CUDA context, cuBLAS workspace),
        once measured on these GPUs (see gpu_overhead.py); None before."""
        return self._overhead.known

    def measured_memory(self, card: ModelCard, options: dict[str, Any],
                        embedding: bool = False) -> Pools | None:
        """What loading this configuration took from each pool: its runner's GPU memory (NVML's
        per-process figure, else the GPU buffers llama.cpp reported) and its resident memory
        beyond an empty runner's."""
        loaded = self._loaded.get(self._key(card, options, embedding))
        if loaded is None or loaded.runner.pid is None:
            return None
        rss = loaded.runner.memory()
        reported = buffers_on_gpu(loaded.buffers)
        vram = budget.gpu_bytes_of(loaded.runner.pid) if reported else 0
        return Pools(vram or reported, 0 if rss is None else max(0, rss - loaded.base_rss))

    def footprint(self, card: ModelCard, options: dict[str, Any],
                  embedding: bool = False) -> tuple[Shape, int]:
        """(shape, context length) of a configuration: what each part of it will take once loaded,
        from the GGUF's tensors and metadata (see gguf/gguf_memory.py)."""
        params = self._load_params(card, options, embedding)
        slots = 1 if embedding else self.parallel(card)
        repacks = gguf_memory.cpu_has_amx() and not self._safe_mode(card)
        return gguf_memory.shape(Path(card.source["path"]), params, slots, repacks=repacks), params["n_ctx"]

    def resident(self) -> list[Residency]:
        out = []
        for loaded in self._loaded.values():
            shape, _ = self.footprint(loaded.card, dict(loaded.key[3]), loaded.embedding)
            gpu_layers = loaded.gpu_layers if loaded.gpu_offload else 0
            used = as_ollama_shows(shape, gpu_layers, shape.memory(shape.max_layers if gpu_layers < 0 else gpu_layers))
            out.append(Residency(name=loaded.card.name, size=used.total, size_vram=used.vram,
                                 context_length=loaded.n_ctx, expires_at=None))
        return out

    async def close(self) -> None:
        for loaded in list(self._loaded.values()):
            await self.unload(loaded.card)

    # inference
    def _prompt(self, card: ModelCard, request: Inference, limit: int) -> str:
        """The text the runner completes; CPU-bound (templates are code), so run in a thread."""
        info = gguf_info.read(Path(card.source["path"]))
        template = prompts.ChatTemplate(card.template, card.source["template_source"],
                                        card.source["template_stop"])
        bos, eos = info.token("bos"), info.token("eos")
        if request.suffix:
            if "insert" not in card.capabilities:
                raise Unsupported(f"{card.name} does not support insert")
            text = f"<fim_prefix>{request.prompt}<fim_suffix>{request.suffix}<fim_middle>"
        elif request.kind == "chat":
            text = prompts.render_chat(template, request, bos, eos, limit)
        else:
            text = prompts.render_generate(template, request, bos, eos, limit)
        if len(text) > limit:
            raise BadRequest(f"the prompt is {len(text)} characters, more than the model's context "
                             f"can hold (set options.num_ctx)")
        if not text:
            raise BadRequest("the template rendered an empty prompt")
        return text

    @staticmethod
    def _format(request: Inference) -> str | dict[str, Any] | None:
        """What the runner's grammar enforces: the request's format, or a forced tool call."""
        schema: Any = request.format
        if request.tools and request.tool_choice not in (None, "auto", "none"):
            schema = prompts.tool_call_schema(request.tools, request.tool_choice)
        if isinstance(schema, dict):
            grammar_limits.check(schema)
        if schema in (None, "") or schema == "json" or isinstance(schema, dict):
            return schema or None
        raise BadRequest("format must be \"json\" or a JSON schema object")

    def _sampling(self, card: ModelCard, request: Inference, stops: list[str], n_ctx: int) -> dict[str, Any]:
        # a model stored before create-time checks may hold a null or a non-string stop
        o = {k: v for k, v in {**card.parameters, **request.options}.items() if v is not None}
        num_predict = int(o.get("num_predict", -1))
        return {
            "max_tokens": num_predict if num_predict > 0 else n_ctx,
            "temperature": float(o.get("temperature", 0.8)),
            "top_p": float(o.get("top_p", 0.9)), "top_k": int(o.get("top_k", 40)),
            "min_p": float(o.get("min_p", 0.0)), "typical_p": float(o.get("typical_p", 1.0)),
            "repeat_penalty": float(o.get("repeat_penalty", 1.1)),
            "repeat_last_n": int(o.get("repeat_last_n", 64)),
            "presence_penalty": float(o.get("presence_penalty", 0.0)),
            "frequency_penalty": float(o.get("frequency_penalty", 0.0)),
            "mirostat_mode": int(o.get("mirostat", 0)),
            "mirostat_tau": float(o.get("mirostat_tau", 5.0)),
            "mirostat_eta": float(o.get("mirostat_eta", 0.1)),
            # 0xFFFFFFFF is llama.cpp's "random seed": an explicit seed never becomes it
            "seed": int(o["seed"]) % 0xFFFFFFFF if int(o.get("seed", -1)) >= 0 else None,
            "stop": [*stops, *(s for s in o.get("stop", []) if isinstance(s, str))],
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
        schema = self._format(request)
        # no token is longer than this many characters in practice: a prompt that is longer
        # cannot fit, and is refused before anything tokenises it
        limit = CHARS_PER_TOKEN * self._load_params(card, request.options, False)["n_ctx"]
        text = await anyio.to_thread.run_sync(self._prompt, card, request, limit,
                                              limiter=self._cpu_limiter())
        loaded, load_ns = await self._ensure(card, request.options)
        template_has_bos = bool(card.template) and "bos_token" in card.template
        message = Infer(loaded.runner.next_id(), text, add_bos=not (request.raw or template_has_bos),
                        sampling=self._sampling(card, request, card.source["template_stop"], loaded.n_ctx),
                        format=schema, want_context=not (request.raw or request.kind == "chat"),
                        scope=request.scope)
        collected: list[str] = []
        buffering = bool(request.tools)
        final: Done | None = None
        async for event in loaded.runner.infer(message):
            if not isinstance(event, Piece):
                final = event
                break
            collected.append(event.text)
            if buffering and _may_be_tool_call("".join(collected)):
                continue
            piece = event.text
            if buffering:
                piece, buffering = "".join(collected), False
            if piece:
                yield Delta(text=piece)
        if request.tools:
            rest, calls = prompts.parse_tool_calls("".join(collected), request.tools)
            if buffering and (rest or calls):
                yield Delta(text=rest, tool_calls=calls)
        assert final is not None  # the runner ends every answer with Done, or raises
        yield Final(done_reason=final.done_reason, prompt_tokens=final.prompt_tokens,
                    eval_tokens=final.eval_tokens, load_ns=load_ns, prompt_ns=final.prompt_ns,
                    eval_ns=final.eval_ns, context=final.context, cached_tokens=final.cached_tokens,
                    runner=RunnerCost(final.steps, final.step_ns, final.decode_ns))

    async def embed(self, card: ModelCard, texts: list[str], options: dict[str, Any],
                    truncate: bool = True) -> Embedding:
        if any(not text for text in texts):  # llama.cpp corrupts its heap embedding no tokens
            raise BadRequest(f"input[{texts.index('')}] is empty: there is nothing to embed")
        loaded, load_ns = await self._ensure(card, options, embedding=True)
        started = time.perf_counter_ns()
        result = await loaded.runner.embed(texts, truncate)
        return Embedding(vectors=result.vectors, prompt_tokens=result.prompt_tokens, load_ns=load_ns,
                         total_ns=time.perf_counter_ns() - started + load_ns)


def _may_be_tool_call(text: str) -> bool:
    """While tools are offered, hold back an answer that may turn out to be a tool call."""
    head = text.lstrip()
    return not head or "<tool_call>".startswith(head[:11]) or head.startswith(("<tool_call>", "{"))

"""Continuous batching: one llama.cpp context, `parallel` sequences, one decode loop.

Each slot is a llama.cpp sequence with a stream of `num_ctx` cells of its own (a non-unified KV
cache of `num_ctx x parallel`). Every `step` decodes the next token of each answering sequence
in one batch, then up to `num_batch` tokens of waiting prompts. A sequence joins between steps
and leaves as soon as it ends or is cancelled. Each keeps its own sampler chain (options, seed,
grammar), stop strings and token cap. A slot remembers the tokens its cells hold, so the next
turn of a conversation evaluates only what is new (the prompt cache), and a prompt that starts
like another slot's (the same system prompt) shares those cells.

Runs only inside a runner process.
"""

from __future__ import annotations

import codecs
import ctypes
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import llama_cpp.llama_cpp as llama
from llama_cpp._logger import set_verbose

from localforge.runner.engine import RequestError
from localforge.runner.protocol import Done, Failed, Infer, Load, Piece
from localforge.runner.sampling import Sampler

Event = Piece | Done | Failed
_backend_ready = False


def _init_backend() -> None:
    global _backend_ready  # llama.cpp's process-wide init, once per runner process
    if not _backend_ready:
        set_verbose(False)  # llama.cpp's errors only, so that a crash's stderr tail says why
        llama.llama_backend_init()
        _backend_ready = True


@dataclass(slots=True)
class Sequence:
    request: Infer
    slot: int
    prompt: list[int]
    pending: list[int]  # prompt tokens not evaluated yet
    sampler: Sampler
    max_tokens: int
    stops: list[str]
    started_ns: int
    reused: int  # prompt tokens the slot's cells already held (the prompt cache)
    last: int | None = None  # the sampled token to feed next
    generated: list[int] = field(default_factory=list)
    held: str = ""  # text not sent yet: it may be the start of a stop string
    first_ns: int = 0
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))


class Slots:
    def __init__(self, load: Load) -> None:
        _init_backend()
        p = load.params
        model_params = llama.llama_model_default_params()
        model_params.n_gpu_layers = 0x7FFFFFFF if int(p.get("n_gpu_layers", -1)) == -1 else int(p["n_gpu_layers"])
        mmap, mlock = bool(p.get("use_mmap", True)), bool(p.get("use_mlock", False))
        model_params.load_mode = (llama.LLAMA_LOAD_MODE_MMAP_MLOCK if mmap and mlock else
                                  llama.LLAMA_LOAD_MODE_MLOCK if mlock else
                                  llama.LLAMA_LOAD_MODE_MMAP if mmap else llama.LLAMA_LOAD_MODE_NONE)
        if load.safe_mode:
            model_params.use_extra_bufts = False
        started = time.perf_counter_ns()
        self.model = llama.llama_model_load_from_file(str(p["model_path"]).encode(), model_params)
        if not self.model:
            raise RequestError("backend", f"llama.cpp could not load the model {p['model_path']}")
        self.parallel = max(1, load.parallel)
        self.n_ctx = int(p["n_ctx"])  # per sequence
        self.n_batch = max(1, int(p.get("n_batch", 512)))  # prompt tokens a step reads
        ctx_params = llama.llama_context_default_params()
        ctx_params.n_ctx = self.n_ctx * self.parallel
        ctx_params.n_batch = max(self.n_batch, self.parallel)  # every slot's next token fits one decode
        ctx_params.n_ubatch = self.n_batch
        ctx_params.n_seq_max = self.parallel
        # a stream of num_ctx cells for each sequence: its cells sit where they would if it ran
        # alone (in one unified pool, attention sums over the cells in another order, and greedy
        # answers drift much more with their neighbours)
        ctx_params.kv_unified = False
        ctx_params.n_threads = ctx_params.n_threads_batch = int(p.get("n_threads") or 1)
        self.ctx = llama.llama_init_from_model(self.model, ctx_params)
        if not self.ctx:
            llama.llama_model_free(self.model)
            raise RequestError("backend", "llama.cpp could not create a context (out of memory?)")
        self.load_ns = time.perf_counter_ns() - started
        self.vocab = llama.llama_model_get_vocab(self.model)
        self.n_vocab = llama.llama_vocab_n_tokens(self.vocab)
        self.memory = llama.llama_get_memory(self.ctx)
        self.batch = llama.llama_batch_init(max(self.n_batch, self.parallel), 0, 1)
        self.cached: list[list[int]] = [[] for _ in range(self.parallel)]  # tokens each slot's cells hold
        self.scopes: list[str] = [""] * self.parallel  # whose they are (Infer.scope): shared only within one
        self.active: dict[int, Sequence] = {}  # request id -> sequence
        self.decode_ns = 0  # time in llama_decode, since the runner started
        self._piece = ctypes.create_string_buffer(256)

    def close(self) -> None:
        for sequence in self.active.values():
            sequence.sampler.free()
        llama.llama_batch_free(self.batch)
        llama.llama_free(self.ctx)
        llama.llama_model_free(self.model)

    # tokens
    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        data = text.encode()
        room = len(data) + 8
        buffer = (llama.llama_token * room)()
        n = llama.llama_tokenize(self.vocab, data, len(data), buffer, room, add_bos, True)
        if n < 0:
            buffer = (llama.llama_token * -n)()
            n = llama.llama_tokenize(self.vocab, data, len(data), buffer, -n, add_bos, True)
        return list(buffer[:n])

    def _piece_bytes(self, token: int) -> bytes:
        n = llama.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[:n] if n > 0 else b""

    # admission
    @property
    def free(self) -> int:
        return self.parallel - len(self.active)

    def admit(self, request: Infer) -> None:
        """Start a sequence in the free slot whose cells share the longest prefix with its prompt."""
        prompt = self.tokenize(request.text, request.add_bos)
        if len(prompt) >= self.n_ctx:
            raise RequestError("bad_request", f"the prompt is {len(prompt)} tokens, more than the "
                               f"model's context of {self.n_ctx} (set options.num_ctx)")
        if not prompt:
            raise RequestError("bad_request", "the prompt is empty")
        busy = {s.slot for s in self.active.values()}
        slot, reused = max(((s, self._reusable(s, request.scope, prompt)) for s in range(self.parallel)
                            if s not in busy), key=lambda found: found[1])
        reused = min(reused, len(prompt) - 1)  # evaluate at least one token, for its logits
        if not llama.llama_memory_seq_rm(self.memory, slot, reused, -1):
            # some caches (sliding-window attention, recurrent models) cannot drop a tail
            llama.llama_memory_seq_rm(self.memory, slot, -1, -1)
            reused = 0
        reused = self._share_prefix(slot, request.scope, prompt, reused)
        self.cached[slot], self.scopes[slot] = prompt[:reused], request.scope
        sampling = request.sampling
        max_tokens = min(int(sampling["max_tokens"]), self.n_ctx - len(prompt))
        sampler = Sampler(self.vocab, self.n_vocab, self.n_ctx, sampling, request.format)
        self.active[request.id] = Sequence(request, slot, prompt, prompt[reused:], sampler, max_tokens,
                                           [s for s in sampling.get("stop", []) if s], time.perf_counter_ns(),
                                           reused)

    def _reusable(self, slot: int, scope: str, prompt: list[int]) -> int:
        """The start of a prompt a slot's cells hold, if they hold the same scope's tokens."""
        return _common(self.cached[slot], prompt) if self.scopes[slot] == scope else 0

    def _share_prefix(self, slot: int, scope: str, prompt: list[int], reused: int) -> int:
        """If another slot holds a longer start of this prompt (the same system prompt, say),
        the slot takes a copy of those cells instead of evaluating them again; returns the tokens
        reused."""
        donor, common = max(((s, min(self._reusable(s, scope, prompt), len(prompt) - 1))
                             for s in range(self.parallel) if s != slot), key=lambda found: found[1],
                            default=(slot, 0))
        if common <= reused:
            return reused
        # each slot is a stream of its own, and llama.cpp copies between streams only whole:
        # copy the donor's stream, then drop what follows the shared start
        llama.llama_memory_seq_rm(self.memory, slot, -1, -1)
        llama.llama_memory_seq_cp(self.memory, donor, slot, -1, -1)
        if not llama.llama_memory_seq_rm(self.memory, slot, common, -1):
            llama.llama_memory_seq_rm(self.memory, slot, -1, -1)
            self.cached[slot] = []
            return 0
        self.cached[slot] = prompt[:common]
        return common

    def cancel(self, request_id: int) -> Done | None:
        sequence = self.active.get(request_id)
        return None if sequence is None else self._finish(sequence, "cancel")

    # the loop
    def step(self) -> Iterator[list[Event]]:
        """One step: the next token of every answering sequence in one decode, then waiting
        prompts in chunks of `num_batch` tokens, up to `num_batch` prompt tokens a step. A long
        prompt takes several steps while the answers in flight keep moving. Yields the pieces
        and ends each decode produced, as soon as it produced them (the answers' pieces do not
        wait for a prompt's chunk).

        A prompt is read exactly as llama.cpp reads it alone (`Llama.eval`): in chunks of
        `num_batch` from where the slot's cache ends, each chunk in a decode of its own. Split
        otherwise, or decoded beside other sequences (llama.cpp then cuts the batch into ubatches
        holding as many tokens of each sequence), its rows go through other kernels, and on a CPU
        its greedy answer can drift from the one it gets alone (measured with SmolLM2)."""
        answering = []
        for sequence in self.active.values():
            if sequence.last is not None:
                answering.append((sequence, [sequence.last]))
                sequence.last = None
        if answering:
            yield self._decode(answering)
        room = self.n_batch
        for sequence in list(self.active.values()):
            chunk = sequence.pending[:self.n_batch]
            if chunk and len(chunk) <= room:  # a chunk that does not fit waits for the next step
                del sequence.pending[:len(chunk)]
                room -= len(chunk)
                yield self._decode([(sequence, chunk)])

    def _decode(self, work: list[tuple[Sequence, list[int]]]) -> list[Event]:
        """Decode each sequence's tokens in one batch; sample the next token of every sequence
        whose prompt is then complete."""
        batch, n, outputs = self.batch, 0, []
        for sequence, tokens in work:
            cells = self.cached[sequence.slot]
            for i, token in enumerate(tokens):
                logits = i == len(tokens) - 1 and not sequence.pending
                batch.token[n], batch.pos[n] = token, len(cells)
                batch.n_seq_id[n], batch.seq_id[n][0], batch.logits[n] = 1, sequence.slot, logits
                cells.append(token)
                if logits:
                    outputs.append((n, sequence))
                n += 1
        batch.n_tokens = n
        started = time.perf_counter_ns()
        result = llama.llama_decode(self.ctx, batch)
        self.decode_ns += time.perf_counter_ns() - started
        if result != 0:
            return [self._fail(sequence, f"llama_decode failed ({result})") for sequence, _ in work]
        events: list[Event] = []
        for index, sequence in outputs:
            token = sequence.sampler.sample(self.ctx, index, sequence.generated)
            sequence.first_ns = sequence.first_ns or time.perf_counter_ns()
            events += self._advance(sequence, token)
        return events

    def _advance(self, sequence: Sequence, token: int) -> list[Event]:
        if llama.llama_vocab_is_eog(self.vocab, token):
            return self._end(sequence, "stop")
        sequence.generated.append(token)
        sequence.held += sequence.decoder.decode(self._piece_bytes(token))
        events: list[Event] = []
        for stop in sequence.stops:
            at = sequence.held.find(stop)
            if at >= 0:
                sequence.held = sequence.held[:at]
                return self._end(sequence, "stop")
        keep = _held_back(sequence.held, sequence.stops)
        ready, sequence.held = sequence.held[:len(sequence.held) - keep], sequence.held[len(sequence.held) - keep:]
        if ready:
            events.append(Piece(sequence.request.id, ready))
        if len(sequence.generated) >= sequence.max_tokens:
            return events + self._end(sequence, "length")
        sequence.last = token
        return events

    def _end(self, sequence: Sequence, reason: str) -> list[Event]:
        events: list[Event] = []
        if sequence.held:
            events.append(Piece(sequence.request.id, sequence.held))
            sequence.held = ""
        return [*events, self._finish(sequence, reason)]

    def _finish(self, sequence: Sequence, reason: str) -> Done:
        del self.active[sequence.request.id]
        sequence.sampler.free()
        ended = time.perf_counter_ns()
        first = sequence.first_ns or ended
        return Done(sequence.request.id, reason, prompt_tokens=len(sequence.prompt) - sequence.reused,
                    eval_tokens=len(sequence.generated), prompt_ns=first - sequence.started_ns,
                    eval_ns=ended - first,
                    context=[*sequence.prompt, *sequence.generated] if sequence.request.want_context else None,
                    cached_tokens=sequence.reused)

    def _fail(self, sequence: Sequence, message: str) -> Failed:
        del self.active[sequence.request.id]
        sequence.sampler.free()
        llama.llama_memory_seq_rm(self.memory, sequence.slot, -1, -1)
        self.cached[sequence.slot] = []
        return Failed(sequence.request.id, "backend", message)


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _held_back(text: str, stops: list[str]) -> int:
    """How much of the end of `text` may be the start of a stop string."""
    return max((i for stop in stops for i in range(min(len(stop) - 1, len(text)), 0, -1)
                if text.endswith(stop[:i])), default=0)

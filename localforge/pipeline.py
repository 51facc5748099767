"""Every inference request takes the same path: profile -> route -> schedule -> backend -> record.

Controllers turn wire requests into an `Inference` and call `Pipeline.run`; they never talk to a
backend directly. The registry finds what the request names: a backend's model (an `Entry`),
served as it is, or a route (`auto` and its presets), for which the router chooses the entry
first. The router and the VRAM scheduler replace the `route` and `schedule` stages without
touching the controllers.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pluggy
from anyio.abc import TaskGroup

from localforge.backends.registry import Entry, Registry
from localforge.errors import BackendFailed, LocalForgeError, RunnerCrashed, StaysLocal, Unavailable
from localforge.evaluation import Asker, Evaluator, grade
from localforge.inference import Delta, Embedding, Event, Final, Inference
from localforge.memory.records import Recorder, RequestRecord
from localforge.plugins import call_all
from localforge.route.auto import Routed, Routing
from localforge.route.facts import routing_facts
from localforge.schedule.scheduler import Scheduler

log = logging.getLogger(__name__)


def is_model_fault(exc: BaseException) -> bool:
    """Whether an error is the model's own: its backend failed or crashed (BackendFailed), its
    endpoint is down (Unavailable), or something unexpected broke. Only these teach the router
    and hand the request to the next candidate; a client's error (BadRequest, Unsupported), a
    cancellation or a client gone (Canceled) and a full queue (ServerBusy) say nothing of it."""
    return isinstance(exc, BackendFailed | Unavailable) or not isinstance(exc, LocalForgeError)


def capped_by_client(request: Inference, final: Final) -> bool:
    """An answer cut off by the client's own num_predict, not by the model's context or a cap
    the server set (a model's parameters): the answer may well have been fine."""
    cap = int(request.options.get("num_predict") or -1)
    return cap > 0 and final.eval_tokens >= cap


@dataclass(slots=True)
class Served:
    """A request on its way: the model that serves it and the stream of its answer."""

    entry: Entry | None  # None: auto's load and unload forms, which no model serves
    events: AsyncIterator[Event]
    headers: dict[str, str] = field(default_factory=dict)


class Pipeline:
    def __init__(self, registry: Registry, scheduler: Scheduler, recorder: Recorder,
                 pm: pluggy.PluginManager) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.recorder = recorder
        self.pm = pm
        self.routing: Routing | None = None  # the `auto` model; set by the app factory
        self.evaluators: list[Evaluator] = []  # graders of a sample of routed answers
        self.background: TaskGroup | None = None  # where they run, after the answer is sent

    async def route(self, request: Inference) -> Entry:
        return await self.registry.resolve(request.model)

    def is_remote(self, entry: Entry) -> bool:
        """Where a model runs, as the router's privacy policy sees it: its card, then the config."""
        configured = self.routing.settings.models if self.routing is not None else {}
        return routing_facts(entry.card.name, entry.card, configured).locality == "remote"

    def _keep_private(self, entry: Entry, request: Inference) -> None:
        """The last gate before a backend, whichever path led here (auto's choice or fallback, a
        retry, an evaluator's request, an embedding): a private request never goes remote."""
        if request.private and self.is_remote(entry):
            raise StaysLocal(f"private data stays on local models: '{entry.card.name}' is remote")

    async def run(self, request: Inference, endpoint: str) -> Served:
        """Resolve the model now (so a bad name fails before any byte is sent); stream later."""
        record = RequestRecord(id=request.request_id, endpoint=endpoint,
                               requested_model=request.model, client=request.client)
        try:
            found = await self.registry.find(request.model)
            routed: Routed | None = None
            if isinstance(found, Entry):
                entry = found
            elif request.is_load_only:
                return Served(None, self._load_auto(request, record),
                              {"X-LocalForge-Request-Id": request.request_id})
            else:
                routed = await self._route(request)
                entry = routed.entries[routed.decision.chosen]
        except LocalForgeError as exc:
            await self._record_error(record, exc)
            raise
        record.served_model, record.backend = entry.card.name, entry.backend.name
        headers = {"X-LocalForge-Model": entry.card.name, "X-LocalForge-Request-Id": request.request_id}
        if routed is None:
            return Served(entry, self._serve(entry, request, record), headers)
        headers["X-LocalForge-Route"] = routed.reason
        record.overflow = routed.decision.overflow
        return Served(entry, self._serve_routed(routed, request, record, headers), headers)

    async def _load_auto(self, request: Inference, record: RequestRecord) -> AsyncIterator[Event]:
        """auto's load form (`ollama run auto`) and unload form (`ollama stop auto`), answered at
        once: auto chooses a model per prompt, so none is known before a prompt arrives, and
        loading a guess could evict the model the first prompt needs. That prompt loads it."""
        final = Final(done_reason="unload" if request.keep_alive == 0 else "load")
        record.finish(final)
        await self._save(record, time.perf_counter_ns())
        yield final

    async def _route(self, request: Inference) -> Routed:
        """Choose the model that serves a request to a route (the registry has routes only
        once the routing that makes them is built); a sensitive prompt's request is private."""
        assert self.routing is not None
        routed = await self.routing.route(request)
        if routed.profile.sensitive:
            request.private = request.private or self.routing.settings.private_stays_local
        return routed

    async def _serve_routed(self, routed: Routed, request: Inference, record: RequestRecord,
                            headers: dict[str, str]) -> AsyncIterator[Event]:
        """Serve with the chosen model; if a model fault stops it before its first token, the
        next candidate serves instead (the headers, still unsent, are updated). A model fault is
        an outcome; any other error goes to the client as it is."""
        assert self.routing is not None
        order = routed.decision.order
        for i, model in enumerate(order):
            entry = routed.entries[model]
            record.served_model, record.backend = entry.card.name, entry.backend.name
            started = False
            answer: list[str] = []
            try:
                async for event in self._serve(entry, request, record):
                    started = True
                    if isinstance(event, Delta):
                        answer.append(event.text)
                    elif event.done_reason == "length" and not capped_by_client(request, event):
                        await self.routing.signal(request.request_id, model, "length")
                    yield event
                self._evaluate_later(request, model, "".join(answer), routed.profile.sensitive)
                return
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                if not is_model_fault(exc):
                    raise
                await self.routing.signal(request.request_id, model, "error")
                if started or i == len(order) - 1:
                    raise
                following = order[i + 1]
                log.warning("routed model %s failed before its first token; %s serves instead",
                            model, following)
                record.status, record.error = "ok", ""
                headers["X-LocalForge-Model"] = following
                headers["X-LocalForge-Route"] = f"fallback: {model} failed; {routed.reason}"

    def _evaluate_later(self, request: Inference, model: str, answer: str, sensitive: bool) -> None:
        """Hand a sample of answers to the evaluators (the judge), in the background."""
        if self.background is None or not answer:
            return
        for evaluator in self.evaluators:
            if random.random() < evaluator.sample:
                self.background.start_soon(self._evaluate, evaluator, request, model, answer, sensitive)

    async def _evaluate(self, evaluator: Evaluator, request: Inference, model: str, answer: str,
                        sensitive: bool) -> None:
        # what an evaluator asks about a sensitive prompt quotes it: private, whatever
        # private_stays_local says (a remote judge is an opt-in for the other prompts only)
        asker: Asker = PrivateAsker(self) if sensitive else self
        score = await grade(evaluator, request, answer, asker)
        if score is not None and self.routing is not None:
            await self.routing.judged(request.request_id, model, score, evaluator.name)

    async def _serve(self, entry: Entry, request: Inference, record: RequestRecord) -> AsyncIterator[Event]:
        started = time.perf_counter_ns()
        final: Final | None = None
        try:
            self._keep_private(entry, request)
            if request.is_load_only and request.keep_alive == 0:
                await self.scheduler.unload(entry)
                yield Final(done_reason="unload")
                return
            for attempt in (1, 2):
                answered = False
                try:
                    async with self.scheduler.slot(entry, request.options, request.keep_alive,
                                                   until_disconnected=request.until_disconnected) as grant:
                        record.wait_ns = int(grant.waited_s * 1e9)
                        if request.is_load_only:  # the scheduler loaded it to grant the slot
                            yield Final(done_reason="load", load_ns=grant.load_ns)
                            return
                        async for event in entry.backend.infer(entry.card, request):
                            answered = True
                            if isinstance(event, Final):
                                event.total_ns = time.perf_counter_ns() - started
                                event.load_ns = event.load_ns or grant.load_ns
                                final = event
                                self.scheduler.meter.ran(entry.card.name, event.runner)
                                # issue 15, commit before done: the row is written before the
                                # final chunk goes out, so an acknowledged answer is never lost
                                record.finish(final)
                                await self._save(record, started)
                            yield event
                    break
                except RunnerCrashed as exc:
                    if answered or attempt == 2:
                        raise
                    _retrying(exc)
        except LocalForgeError as exc:
            await self._record_error(record, exc)
            raise
        except anyio.get_cancelled_exc_class():
            if final is None:  # else its row is written: the answer was complete
                record.status = "canceled"
                with anyio.CancelScope(shield=True):
                    await self._save(record, started)
            raise
        except Exception as exc:
            log.exception("backend %s failed", entry.backend.name)
            await self._record_error(record, exc)
            raise
        if final is None:  # a final answer was saved before it was sent
            await self._save(record, started)

    async def embed(self, request: Inference, texts: list[str], truncate: bool,
                    endpoint: str) -> tuple[Entry, Embedding]:
        record = RequestRecord(id=request.request_id, endpoint=endpoint,
                               requested_model=request.model, client=request.client)
        started = time.perf_counter_ns()
        try:
            entry = await self.route(request)
            record.served_model, record.backend = entry.card.name, entry.backend.name
            self._keep_private(entry, request)
            result = await self._embed_once_more(entry, request, texts, truncate, record)
        except LocalForgeError as exc:
            await self._record_error(record, exc)
            raise
        record.prompt_tokens, record.load_ns = result.prompt_tokens, result.load_ns
        await self._save(record, started)
        return entry, result

    async def _embed_once_more(self, entry: Entry, request: Inference, texts: list[str],
                               truncate: bool, record: RequestRecord) -> Embedding:
        """Embed; a runner that crashes is replaced once."""
        for attempt in (1, 2):
            try:
                async with self.scheduler.slot(entry, request.options, request.keep_alive, embedding=True,
                                               until_disconnected=request.until_disconnected) as grant:
                    record.wait_ns = int(grant.waited_s * 1e9)
                    result = await entry.backend.embed(entry.card, texts, request.options, truncate)
                result.load_ns = result.load_ns or grant.load_ns
                return result
            except RunnerCrashed as exc:
                if attempt == 2:
                    raise
                _retrying(exc)
        raise AssertionError("unreachable")

    async def _record_error(self, record: RequestRecord, exc: BaseException) -> None:
        record.status = "error"
        record.error = exc.message if isinstance(exc, LocalForgeError) else type(exc).__name__
        with anyio.CancelScope(shield=True):
            await self._save(record, None)

    async def _save(self, record: RequestRecord, started: int | None) -> None:
        if started is not None:
            record.total_ns = time.perf_counter_ns() - started
        row: dict[str, Any] = await self.recorder.save(record)
        if record.status == "ok" and record.served_model:
            self.scheduler.meter.served(record.served_model, record.total_ns / 1e9,
                                        record.eval_tokens, record.eval_ns / 1e9)
        await call_all(self.pm.hook.request_complete(record=row))


class PrivateAsker:
    """The pipeline as an evaluator of a sensitive request sees it: every request it makes is
    private, so its question, which quotes the prompt, is never sent to a remote model."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def run(self, request: Inference, endpoint: str) -> Served:
        request.private = True
        return await self.pipeline.run(request, endpoint)


def _retrying(crash: RunnerCrashed) -> None:
    """A crash that safe mode heals is expected on some CPUs: the backend's one line says so."""
    log.log(logging.INFO if crash.healed else logging.WARNING, "%s; retrying on a fresh runner", crash.message)

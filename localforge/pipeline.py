"""Every inference request takes the same path: profile -> route -> schedule -> backend -> record.

Controllers turn wire requests into an `Inference` and call `Pipeline.run`; they never talk to a
backend directly. The router and the VRAM scheduler replace the `route` and `schedule` stages
without touching the controllers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pluggy

from localforge.errors import LocalForgeError
from localforge.inference import Delta, Embedding, Event, Final, Inference
from localforge.memory.records import Recorder, RequestRecord
from localforge.plugins import call_all
from localforge.route.registry import Entry, Registry
from localforge.schedule.slots import Slots

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Served:
    """A request on its way: the model that serves it and the stream of its answer."""

    entry: Entry
    events: AsyncIterator[Event]
    headers: dict[str, str] = field(default_factory=dict)


class Pipeline:
    def __init__(self, registry: Registry, slots: Slots, recorder: Recorder,
                 pm: pluggy.PluginManager) -> None:
        self.registry = registry
        self.slots = slots
        self.recorder = recorder
        self.pm = pm

    async def route(self, request: Inference) -> Entry:
        return await self.registry.resolve(request.model)

    async def run(self, request: Inference, endpoint: str) -> Served:
        """Resolve the model now (so a bad name fails before any byte is sent); stream later."""
        record = RequestRecord(id=request.request_id, endpoint=endpoint,
                               requested_model=request.model, client=request.client)
        try:
            entry = await self.route(request)
        except LocalForgeError as exc:
            await self._record_error(record, exc)
            raise
        record.served_model, record.backend = entry.card.name, entry.backend.name
        return Served(entry, self._serve(entry, request, record),
                      {"X-LocalForge-Model": entry.card.name,
                       "X-LocalForge-Request-Id": request.request_id})

    async def _serve(self, entry: Entry, request: Inference, record: RequestRecord) -> AsyncIterator[Event]:
        started = time.perf_counter_ns()
        final: Final | None = None
        try:
            async with self.slots.slot(entry, request.keep_alive):
                if request.is_load_only:
                    final = await self._load_or_unload(entry, request)
                    yield final
                    return
                async for event in entry.backend.infer(entry.card, request):
                    if isinstance(event, Final):
                        event.total_ns = time.perf_counter_ns() - started
                        final = event
                    yield event
        except LocalForgeError as exc:
            await self._record_error(record, exc)
            raise
        except anyio.get_cancelled_exc_class():
            record.status = "canceled"
            with anyio.CancelScope(shield=True):
                await self._save(record, started)
            raise
        except Exception as exc:
            log.exception("backend %s failed", entry.backend.name)
            await self._record_error(record, exc)
            raise
        if final is not None:
            record.finish(final)
        await self._save(record, started)

    async def _load_or_unload(self, entry: Entry, request: Inference) -> Final:
        if request.keep_alive == 0:
            await self.slots.unload(entry)
            return Final(done_reason="unload")
        load_ns = await entry.backend.load(entry.card, request.options)
        self.slots.mark_loaded(entry, request.keep_alive)
        return Final(done_reason="load", load_ns=load_ns)

    async def embed(self, request: Inference, texts: list[str], truncate: bool,
                    endpoint: str) -> tuple[Entry, Embedding]:
        record = RequestRecord(id=request.request_id, endpoint=endpoint,
                               requested_model=request.model, client=request.client)
        started = time.perf_counter_ns()
        try:
            entry = await self.route(request)
            record.served_model, record.backend = entry.card.name, entry.backend.name
            async with self.slots.slot(entry, request.keep_alive):
                result = await entry.backend.embed(entry.card, texts, request.options, truncate)
        except LocalForgeError as exc:
            await self._record_error(record, exc)
            raise
        record.prompt_tokens, record.load_ns = result.prompt_tokens, result.load_ns
        await self._save(record, started)
        return entry, result

    async def _record_error(self, record: RequestRecord, exc: BaseException) -> None:
        record.status = "error"
        record.error = exc.message if isinstance(exc, LocalForgeError) else type(exc).__name__
        with anyio.CancelScope(shield=True):
            await self._save(record, None)

    async def _save(self, record: RequestRecord, started: int | None) -> None:
        if started is not None:
            record.total_ns = time.perf_counter_ns() - started
        row: dict[str, Any] = await self.recorder.save(record)
        await call_all(self.pm.hook.request_complete(record=row))


def collect_text(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))

"""A runner process: one model configuration, served over stdin/stdout until the server says stop.

The protocol owns the original stdout (`__main__` takes it before any import); file descriptor 1
points at stderr, so that anything llama.cpp prints cannot corrupt a frame. A reader thread takes
frames off stdin: a `Cancel` marks its request at once (the decode loop checks between tokens),
everything else queues for the main thread. When stdin closes, the server is gone, and so is the
runner.

`LOCALFORGE_RUNNER_FAULT` provokes a real fault, for tests: `segv-first-decode` segfaults on the
first decode unless extra buffer types are off (what llama.cpp's AMX path does), `segv-decode`
on every decode, `exception-decode` raises an exception the runner does not handle,
`garbage-output` writes bytes that are not a frame and `huge-frame` a frame header over the
size limit, then go on serving as if nothing happened; `segv-load` segfaults while loading. A suffix
`@TEXT` limits it to models whose file name contains TEXT; several are separated by commas.
"""

from __future__ import annotations

import ctypes
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import psutil

from localforge.runner import buffers
from localforge.runner.engine import Engine, RequestError, gpu_offload
from localforge.runner.protocol import (
    HEADER,
    MARK,
    MAX_FRAME,
    Cancel,
    Done,
    Embed,
    Failed,
    FromRunner,
    Infer,
    Load,
    Loaded,
    Stop,
    ToRunner,
    frame,
    to_runner,
)
from localforge.runner.slots import Event, Slots


class InjectedFault(Exception):
    """The test fault hook's unhandled exception."""


class Fault:
    def __init__(self, spec: str, model_path: str, safe_mode: bool, out: BinaryIO) -> None:
        self.kind = ""
        for part in filter(None, spec.split(",")):
            kind, _, where = part.strip().partition("@")
            if where in Path(model_path).name:
                self.kind = kind
        self.safe_mode = safe_mode
        self.out = out

    def at_load(self) -> None:
        if self.kind == "segv-load":
            ctypes.string_at(0)

    def before_decode(self) -> None:
        if self.kind == "segv-decode" or (self.kind == "segv-first-decode" and not self.safe_mode):
            ctypes.string_at(0)  # a real SIGSEGV, as a native fault would be
        if self.kind == "exception-decode":
            raise InjectedFault("injected by LOCALFORGE_RUNNER_FAULT")
        if self.kind == "garbage-output":
            self.out.write(HEADER.pack(5) + b"\xc1\xc1\xc1\xc1\xc1")  # 0xc1: never valid msgpack
            self.out.flush()
        if self.kind == "huge-frame":
            self.out.write(HEADER.pack(MAX_FRAME + 1))
            self.out.flush()


def _read_exactly(fd: int, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _read_frames(fd: int, inbox: queue.Queue[ToRunner], cancelled: set[int]) -> None:
    while True:
        header = _read_exactly(fd, HEADER.size)
        body = header and _read_exactly(fd, HEADER.unpack(header)[0])
        if body is None:
            os._exit(0)  # the server went away: nothing is left to serve
        message = to_runner.decode(body)
        if isinstance(message, Cancel):
            cancelled.add(message.id)
        else:
            inbox.put(message)


class Outbox:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        out.write(MARK)

    def send(self, message: FromRunner) -> None:
        self.out.write(frame(message))
        self.out.flush()

    def send_all(self, messages: Sequence[FromRunner]) -> None:
        """One write for what one decode produced: the server reads a step's pieces at once."""
        if messages:
            self.out.write(b"".join(map(frame, messages)))
            self.out.flush()


def serve_embeddings(engine: Engine, fault: Fault, inbox: queue.Queue[ToRunner], outbox: Outbox) -> None:
    while not isinstance(message := inbox.get(), Stop):
        if not isinstance(message, Embed):
            continue
        try:
            fault.before_decode()
            outbox.send(engine.embed(message.id, message.texts, message.truncate))
        except RequestError as exc:
            outbox.send(exc.failed(message.id))
        except (ValueError, RuntimeError) as exc:  # llama-cpp-python's own errors
            outbox.send(Failed(message.id, "backend", f"llama.cpp: {exc}"))


def _drain(inbox: queue.Queue[ToRunner], block: bool) -> list[ToRunner]:
    messages = [inbox.get()] if block else []
    while True:
        try:
            messages.append(inbox.get_nowait())
        except queue.Empty:
            return messages


class StepClock:
    """What the runner's steps cost, handed out with each `Done` (so that the figures, summed
    over every answer, are the runner's totals): steps, their time, and the part in llama_decode.
    A `Done` carries the time of its own step up to the moment it leaves."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self.steps = self.step_ns = 0  # not yet handed out
        self.started_ns, self.counted = 0, False  # the step under way

    def start(self) -> None:
        self.started_ns, self.counted = time.perf_counter_ns(), False

    def take(self) -> None:
        """Count the step under way, up to now."""
        now = time.perf_counter_ns()
        self.step_ns += now - self.started_ns
        self.started_ns = now
        self.steps += not self.counted
        self.counted = True

    def stamp(self, events: list[Event]) -> list[Event]:
        for event in events:
            if isinstance(event, Done):
                self.take()
                event.steps, event.step_ns = self.steps, self.step_ns
                event.decode_ns, self.slots.decode_ns = self.slots.decode_ns, 0
                self.steps = self.step_ns = 0
        return events


def decode_loop(slots: Slots, fault: Fault, inbox: queue.Queue[ToRunner], cancelled: set[int],
                outbox: Outbox) -> None:
    """Admit requests between steps while slots are free; one batch per step for all of them."""
    waiting: deque[Infer] = deque()
    clock = StepClock(slots)
    while True:
        for message in _drain(inbox, block=not slots.active and not waiting):
            if isinstance(message, Stop):
                return
            if isinstance(message, Infer):
                waiting.append(message)
        for request_id in list(cancelled):  # frames arrive in order: its Infer is here or done
            cancelled.discard(request_id)
            done = slots.cancel(request_id)
            if done is not None:
                outbox.send(done)
            for request in [r for r in waiting if r.id == request_id]:
                waiting.remove(request)
                outbox.send(Done(request_id, "cancel", 0, 0, 0, 0))
        while waiting and slots.free:
            request = waiting.popleft()
            try:
                fault.before_decode()
                slots.admit(request)
            except RequestError as exc:
                outbox.send(exc.failed(request.id))
        clock.start()
        decoded = False
        for events in slots.step():
            outbox.send_all(clock.stamp(events))
            decoded = True
        if decoded:
            clock.take()


def resident_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def main(out: BinaryIO) -> None:
    inbox: queue.Queue[ToRunner] = queue.Queue()
    cancelled: set[int] = set()
    threading.Thread(target=_read_frames, args=(sys.stdin.fileno(), inbox, cancelled), daemon=True).start()
    outbox = Outbox(out)
    load = inbox.get()
    if not isinstance(load, Load):
        raise SystemExit("the first message must be Load")
    base_rss = resident_bytes()
    buffers.listen()
    fault = Fault(os.environ.get("LOCALFORGE_RUNNER_FAULT", ""), str(load.params.get("model_path")),
                  load.safe_mode, out)
    fault.at_load()
    try:
        worker = Engine(load) if load.params.get("embedding") else Slots(load)
    except RequestError as exc:
        outbox.send(exc.failed(0))
        return
    outbox.send(Loaded(worker.n_ctx, worker.load_ns, gpu_offload(), base_rss, dict(buffers.allocated)))
    if isinstance(worker, Slots):
        decode_loop(worker, fault, inbox, cancelled, outbox)
    else:
        serve_embeddings(worker, fault, inbox, outbox)
    worker.close()

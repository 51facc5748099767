"""The server's handle on one runner process: start it, stream its answers, notice when it dies.

Frames arrive through an asyncio subprocess protocol, so no task has to sit reading: each message
goes straight to the queue of the request it answers. When the process ends, every request still
waiting gets a `RunnerCrashed` naming the signal or exit status and the last lines of its stderr,
after whatever pieces had already arrived. A stream that is not frames (a frame over the size
limit, bytes msgpack cannot decode) kills the runner: its requests end with that error at once,
and the next request starts a fresh runner.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable

import msgspec
import psutil

from localforge.errors import BackendFailed, BadRequest, LocalForgeError, RunnerCrashed, Unsupported
from localforge.runner.protocol import (
    RUNNER_MODULE,
    BrokenStream,
    Cancel,
    Done,
    Embed,
    Embedded,
    Failed,
    Frames,
    FromRunner,
    Infer,
    Load,
    Loaded,
    Piece,
    Stop,
    ToRunner,
    frame,
    from_runner,
)

log = logging.getLogger(__name__)
STDERR_LINES = 40
STDERR_CAUSE_LINES = 2  # of them, in the error a client sees
_ERRORS: dict[str, type[LocalForgeError]] = {"bad_request": BadRequest, "unsupported": Unsupported,
                                              "backend": BackendFailed}


class _Gone:
    """Put in a request's queue when the runner ended before answering it."""


def describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"signal {-returncode} ({name})"
    return f"exit status {returncode}"


class _Pipes(asyncio.SubprocessProtocol):
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.frames = Frames()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.runner.stderr_received(data)
            return
        if self.runner.broken:
            return  # nothing after a broken frame can be trusted; the runner is being killed
        try:
            bodies = self.frames.feed(data)
            messages = [from_runner.decode(body) for body in bodies]
        except (BrokenStream, msgspec.DecodeError) as exc:
            self.runner.break_stream(str(exc))
            return
        finally:
            if noise := self.frames.noise():
                self.runner.stderr_received(noise)
        for message in messages:
            self.runner.deliver(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.runner.ended()


class Runner:
    """One runner process serving one model configuration (`label` names it in messages)."""

    def __init__(self, label: str, on_exit: Callable[[Runner], None] | None = None) -> None:
        self.label = label
        self.on_exit = on_exit
        self.transport: asyncio.SubprocessTransport | None = None
        self.loaded: asyncio.Future[Loaded] = asyncio.get_running_loop().create_future()
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._partial_line = b""
        self._pending: dict[int, asyncio.Queue[FromRunner | _Gone]] = {}
        self._ids = itertools.count(1)
        self.stopping = False
        self.broken = ""  # why its stream could not be read, once it could not
        self.healed = False  # its owner knows why it died and starts the next one without the cause
        self.alive = True
        self._ended = asyncio.Event()
        self.started_answers = 0  # requests sent
        self.answered = False  # a piece or an answer came back: a crash now is not a first decode's

    @classmethod
    async def start(cls, label: str, load: Load, env: dict[str, str] | None = None,
                    on_exit: Callable[[Runner], None] | None = None) -> Runner:
        """Start the process and load the model; raise the load's error if it fails."""
        runner = cls(label, on_exit)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.subprocess_exec(
            lambda: _Pipes(runner), sys.executable, "-m", RUNNER_MODULE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})}, start_new_session=True)
        runner.transport = transport
        runner._send(load)
        try:
            await runner.loaded
        except BaseException:
            await runner.stop()
            raise
        return runner

    @property
    def pid(self) -> int | None:
        return self.transport.get_pid() if self.transport else None

    @property
    def returncode(self) -> int | None:
        return self.transport.get_returncode() if self.transport else None

    # requests
    async def infer(self, message: Infer) -> AsyncIterator[Piece | Done]:
        queue = self._open(message.id)
        finished = False
        self.started_answers += 1
        try:
            self._send(message)
            while True:
                item = self._check(await queue.get())
                if isinstance(item, Done):
                    finished = True
                    yield item
                    return
                if isinstance(item, Piece):
                    yield item
        finally:
            self._pending.pop(message.id, None)
            if not finished and self.alive:
                self._send(Cancel(message.id))  # the runner stops after the token in flight

    async def embed(self, texts: list[str], truncate: bool) -> Embedded:
        request_id = self.next_id()
        queue = self._open(request_id)
        self.started_answers += 1
        try:
            self._send(Embed(request_id, texts, truncate))
            while True:
                item = self._check(await queue.get())
                if isinstance(item, Embedded):
                    return item
        finally:
            self._pending.pop(request_id, None)

    def next_id(self) -> int:
        return next(self._ids)

    def _open(self, request_id: int) -> asyncio.Queue[FromRunner | _Gone]:
        if not self.alive:
            raise self.crash_error()
        queue: asyncio.Queue[FromRunner | _Gone] = asyncio.Queue()
        self._pending[request_id] = queue
        return queue

    def _check(self, item: FromRunner | _Gone) -> FromRunner:
        if isinstance(item, _Gone):
            raise self.crash_error()
        if isinstance(item, Failed):
            raise _ERRORS[item.kind](item.message)
        return item

    def _send(self, message: ToRunner) -> None:
        assert self.transport is not None
        pipe = self.transport.get_pipe_transport(0)
        if pipe is None or pipe.is_closing():
            raise self.crash_error()
        pipe.write(frame(message))  # type: ignore[attr-defined]

    def crash_error(self) -> RunnerCrashed:
        returncode = self.returncode
        tail = "; ".join([line.strip() for line in self.stderr if line.strip()][-STDERR_CAUSE_LINES:])
        cause = f"its output could not be read ({self.broken})" if self.broken else describe_exit(returncode)
        return RunnerCrashed(f"llama runner process has terminated: {cause}"
                             + (f": {tail}" if tail else "") + f" (model '{self.label}')", healed=self.healed)

    def crash_report(self) -> str:
        """The crash and the last lines the runner wrote to stderr, for the server's log."""
        return "\n".join([self.crash_error().message, *self.stderr])

    # events from the process
    def deliver(self, message: FromRunner) -> None:
        if isinstance(message, Loaded):
            if not self.loaded.done():
                self.loaded.set_result(message)
            return
        if isinstance(message, Failed) and message.id == 0:
            if not self.loaded.done():
                self.loaded.set_exception(_ERRORS[message.kind](message.message))
            return
        self.answered = self.answered or not isinstance(message, Failed)
        queue = self._pending.get(message.id)
        if queue is not None:  # else: the answer of a request that was cancelled
            queue.put_nowait(message)

    def break_stream(self, why: str) -> None:
        log.warning("runner for %s wrote something that is not a frame (%s); killing it", self.label, why)
        self.broken = why
        self.kill()

    def stderr_received(self, data: bytes) -> None:
        lines = (self._partial_line + data).split(b"\n")
        self._partial_line = lines.pop()
        for line in lines:
            text = line.decode(errors="replace").rstrip()
            self.stderr.append(text)
            log.debug("runner %s: %s", self.label, text)

    def ended(self) -> None:
        if self._partial_line:
            self.stderr.append(self._partial_line.decode(errors="replace"))
            self._partial_line = b""
        self.alive = False
        self._ended.set()
        if not self.loaded.done():
            self.loaded.set_exception(self.crash_error())
        for queue in self._pending.values():
            queue.put_nowait(_Gone())
        if self.on_exit is not None:
            self.on_exit(self)  # the owner says what the end means, and logs it
        elif not self.stopping:
            log.warning("%s", self.crash_report())

    # the end
    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the runner to stop; kill it if it has not within `timeout` seconds."""
        self.stopping = True
        if self.transport is None or not self.alive:
            return
        try:
            self._send(Stop())
            self.transport.get_pipe_transport(0).close()  # type: ignore[union-attr]
        except RunnerCrashed:
            pass
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except TimeoutError:
            log.warning("runner for %s did not stop in %.0f s; killing it", self.label, timeout)
            self.transport.kill()
            await self._ended.wait()

    def kill(self) -> None:
        if self.transport is not None and self.alive:
            self.transport.kill()

    def memory(self) -> int | None:
        """The runner's resident memory in bytes, or None once it is gone."""
        try:
            return int(psutil.Process(self.pid).memory_info().rss) if self.pid else None
        except psutil.Error:
            return None

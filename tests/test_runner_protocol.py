"""The stream between the server and a runner: a runner whose output is not frames is killed, and
its requests end with a clean error at once; what an import prints never corrupts a frame.

Real runner processes over a tiny GGUF model; the broken streams come from the runner's fault
hook (`LOCALFORGE_RUNNER_FAULT`), which writes the bad bytes on the protocol's own stream.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import RunningServer, start_server, stop_server
from tiny_gguf import write_tiny_llama

from localforge.errors import RunnerCrashed
from localforge.runner.client import Runner
from localforge.runner.protocol import MARK, Frames, Infer, Load


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("protocol-models") / "garbled.gguf"
    write_tiny_llama(path, seed=41)
    return path


def load_of(model: Path) -> Load:
    return Load({"model_path": str(model), "n_ctx": 256, "n_batch": 64, "n_threads": 1, "n_gpu_layers": 0,
                 "embedding": False})


async def answer(runner: Runner) -> str:
    message = Infer(runner.next_id(), "hello", add_bos=True, sampling={"max_tokens": 3, "temperature": 0})
    return "".join([getattr(event, "text", "") async for event in runner.infer(message)])


async def fails_in(model: Path, fault: str) -> tuple[float, str]:
    runner = await Runner.start("garbled", load_of(model), env={"LOCALFORGE_RUNNER_FAULT": fault})
    started = time.monotonic()
    try:
        with pytest.raises(RunnerCrashed) as crashed:
            await asyncio.wait_for(answer(runner), 30)
        return time.monotonic() - started, crashed.value.message
    finally:
        await runner.stop()


@pytest.mark.parametrize(("fault", "says"), [("garbage-output", "could not be read"),
                                             ("huge-frame", "over the limit")])
def test_a_broken_stream_ends_the_requests_at_once(model: Path, fault: str, says: str) -> None:
    elapsed, message = asyncio.run(fails_in(model, fault))
    assert says in message and "garbled" in message
    assert elapsed < 5, f"the request waited {elapsed:.1f} s for a runner whose stream broke"


def test_what_an_import_prints_before_the_runner_starts_is_only_logged(model: Path, tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("print('hello from an import', flush=True)\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH", "")]))

    async def run() -> tuple[str, list[str]]:
        runner = await Runner.start("garbled", load_of(model), env={"PYTHONPATH": path})
        try:
            return await answer(runner), list(runner.stderr)
        finally:
            await runner.stop()

    text, stderr = asyncio.run(run())
    assert text
    assert "hello from an import" in stderr


def test_frames_find_the_mark_however_the_bytes_arrive() -> None:
    from localforge.runner.protocol import Done, frame, from_runner

    stream = b"noise\n" + MARK + frame(Done(7, "stop", 1, 2, 3, 4)) + frame(Done(8, "length", 1, 2, 3, 4))
    for size in (1, 3, len(MARK) - 1, 64):
        frames = Frames()
        bodies = [b for i in range(0, len(stream), size) for b in frames.feed(stream[i:i + size])]
        assert [from_runner.decode(b).id for b in bodies] == [7, 8]  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def garbled(tmp_path_factory: pytest.TempPathFactory, model: Path) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("garbled"), model.parent,
                          env={"LOCALFORGE_RUNNER_FAULT": "garbage-output@garbled"})
    yield server
    stop_server(server)


def test_a_client_gets_an_error_and_the_server_stays_up(garbled: RunningServer) -> None:
    reply = httpx.post(garbled.url + "/api/generate", timeout=60, json={
        "model": "garbled", "prompt": "hi", "stream": False, "options": {"num_predict": 2}})
    assert reply.status_code == 500
    assert "its output could not be read" in reply.json()["error"]
    assert httpx.get(garbled.url + "/api/version").status_code == 200
    assert "not a frame" in garbled.log()

"""Runner processes: a model that crashes is an error for its requests, never an outage.

Real servers, real runner processes over tiny GGUF models, real signals. Faults that a test needs
on cue come from the runner's own fault hook (`LOCALFORGE_RUNNER_FAULT`), which makes the runner
segfault or raise for real.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import ollama
import psutil
import pytest
from conftest import RunningServer, start_server, stop_server
from tiny_gguf import write_tiny_llama


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runner-models")
    write_tiny_llama(folder / "steady.gguf", seed=21)
    write_tiny_llama(folder / "crashy.gguf", seed=22)
    write_tiny_llama(folder / "amx.gguf", seed=23)
    write_tiny_llama(folder / "broken.gguf", seed=24)
    # a large vocabulary makes the end-of-text token rare: a greedy answer runs to num_predict
    write_tiny_llama(folder / "slow.gguf", n_embd=512, n_layers=4, seed=25, extra_vocab=8000)
    return folder


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Iterator[RunningServer]:
    """`crashy` segfaults on every decode, `amx` on its first decode unless in safe mode (as
    llama.cpp's AMX path does), `broken` raises an exception the runner does not handle."""
    server = start_server(tmp_path_factory.mktemp("faulty"), models, "parallel = 4\n", env={
        "LOCALFORGE_RUNNER_FAULT": "segv-decode@crashy,segv-first-decode@amx,exception-decode@broken"})
    yield server
    stop_server(server)


def runners(server: RunningServer) -> list[psutil.Process]:
    return [p for p in psutil.Process(server.process.pid).children()
            if "localforge.runner" in " ".join(p.cmdline())]


def metric(server: RunningServer, name: str, model: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(f'{name}{{model="{model}"}} '):
            return float(line.split()[-1])
    return 0.0


def chat(server: RunningServer, model: str, **options: object) -> httpx.Response:
    return httpx.post(server.url + "/api/chat", timeout=120, json={
        "model": model, "stream": False, "messages": [{"role": "user", "content": "hi"}],
        "options": {"num_predict": 4, "temperature": 0, **options}})


def test_a_crash_before_the_answer_is_retried_on_a_fresh_runner_then_reported(faulty: RunningServer) -> None:
    answer = chat(faulty, "crashy")
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert "llama runner process has terminated: signal 11 (SIGSEGV)" in error
    assert "crashy" in error
    assert metric(faulty, "localforge_runner_crashes_total", "crashy:latest") == 2  # the retry crashed too
    # its first crash came before anything was decoded: retried in safe mode, which says so once
    assert "restarted in safe mode" in faulty.log()
    # the server is up, other models serve, and the crashed one is not resident
    assert httpx.get(faulty.url + "/api/version").status_code == 200
    assert chat(faulty, "steady").status_code == 200
    assert "crashy" not in [m["name"] for m in httpx.get(faulty.url + "/api/ps").json()["models"]]


def test_a_model_that_keeps_crashing_is_refused_for_a_cool_down(faulty: RunningServer) -> None:
    for _ in range(3):
        if chat(faulty, "crashy").status_code == 503:
            break
    refused = chat(faulty, "crashy")
    assert refused.status_code == 503
    assert "crashed 3 times in 5 minutes" in refused.json()["error"]
    assert chat(faulty, "steady").status_code == 200


def test_a_python_exception_in_the_runner_names_its_cause(faulty: RunningServer) -> None:
    with pytest.raises(ollama.ResponseError) as failed:
        ollama.Client(host=faulty.url).generate("broken", "hi", options={"num_predict": 2})
    assert failed.value.status_code == 500
    assert "exit status 1" in failed.value.error
    assert "InjectedFault" in failed.value.error  # the last lines of the runner's stderr


def test_a_first_decode_crash_heals_in_safe_mode(faulty: RunningServer) -> None:
    client = ollama.Client(host=faulty.url)
    assert client.show("amx").modelinfo["localforge.safe_mode"] is False
    answer = client.chat("amx", [{"role": "user", "content": "hi"}], options={"num_predict": 3})
    assert answer.done
    assert client.show("amx").modelinfo["localforge.safe_mode"] is True
    assert client.show("slow").modelinfo["localforge.safe_mode"] is False  # only the one that crashed
    assert "restarted in safe mode" in faulty.log()
    assert metric(faulty, "localforge_runner_crashes_total", "amx:latest") == 1
    # it stays in safe mode: later requests (and loads) no longer crash
    client.generate("amx", keep_alive=0)
    assert client.chat("amx", [{"role": "user", "content": "again"}], options={"num_predict": 3}).done
    assert metric(faulty, "localforge_runner_crashes_total", "amx:latest") == 1


def test_a_runner_that_dies_while_idle_gives_its_memory_back(faulty: RunningServer) -> None:
    assert chat(faulty, "steady").status_code == 200
    alive = runners(faulty)
    assert alive
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 'localforge_memory_used_bytes{pool="ram"} 0\n' not in httpx.get(
            faulty.url + "/metrics").text:
        time.sleep(0.1)
    assert 'localforge_memory_used_bytes{pool="ram"} 0\n' in httpx.get(faulty.url + "/metrics").text
    assert httpx.get(faulty.url + "/api/ps").json()["models"] == []
    assert chat(faulty, "steady").status_code == 200


@dataclass
class Stream:
    status: int = 0
    lines: list[dict[str, object]] = field(default_factory=list)
    error: str = ""


def _stream(url: str, result: Stream) -> None:
    body = {"model": "slow", "prompt": "the", "options": {"num_predict": 150, "temperature": 0}}
    try:
        # queued requests get no byte until they start: a generous bound, on a busy machine too
        with httpx.stream("POST", url + "/api/generate", json=body, timeout=300) as response:
            result.status = response.status_code
            for line in response.iter_lines():
                if line:
                    result.lines.append(json.loads(line))
    except httpx.HTTPError as exc:
        result.error = repr(exc)


def test_sigkill_with_twenty_streams_in_flight(tmp_path: Path, models: Path) -> None:
    server = start_server(tmp_path, models, "parallel = 4\n")
    try:
        up: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                up.append(httpx.get(server.url + "/api/version", timeout=5).status_code)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        results = [Stream() for _ in range(20)]
        threads = [threading.Thread(target=_stream, args=(server.url, r)) for r in results]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while not any(r.lines for r in results) and time.monotonic() < deadline:
            time.sleep(0.01)
        (runner,) = runners(server)
        os.kill(runner.pid, signal.SIGKILL)
        for thread in threads:
            thread.join(300)
        stop.set()
        watcher.join()

        assert not any(t.is_alive() for t in threads), "a request hung"
        assert not [r.error for r in results if r.error], "a connection dropped"
        served = [r for r in results if r.lines and r.lines[-1].get("done")]
        failed = [r for r in results if r.lines and "error" in r.lines[-1]]
        assert len(served) + len(failed) == 20
        assert failed, "the answer that was streaming when its runner died ends with an error"
        assert all("llama runner process has terminated: signal 9 (SIGKILL)" in str(r.lines[-1]["error"])
                   for r in failed)
        assert all(r.status == 200 for r in results)
        assert len(served) >= 16  # queued requests and those that had not started are served
        assert up and set(up) == {200}
        assert ollama.Client(host=server.url).generate("slow", "the", options={"num_predict": 3}).done
    finally:
        stop_server(server)


def test_memory_stays_flat_over_thirty_loads_and_unloads(tmp_path: Path, tiny_models: Path) -> None:
    from conftest import smollm2_config

    from localforge.bench.runners import MB, memory_cycles

    server = start_server(tmp_path, tiny_models, smollm2_config())
    try:
        cycles = memory_cycles(server.url, "smollm2:135m", server.process.pid, 30)
    finally:
        stop_server(server)
    assert all(c.runners_left == 0 for c in cycles), "an unload left its runner running"
    assert all(c.loaded_runners > 100 * MB for c in cycles)  # the model really was resident each time
    settled = cycles[4].unloaded_server  # the first loads warm the server's caches and pools
    assert cycles[-1].unloaded_server - settled < 16 * MB, [round(c.unloaded_server / MB) for c in cycles]


def test_with_auto_the_next_candidate_serves_and_the_crash_is_learned(tmp_path: Path, models: Path) -> None:
    config = """
[router]
seed = 1
exploration = 0.0
exploration_start = 0.0
thompson_scale = 0.0
stickiness = 0.0

[router.models."crashy:latest"]
quality = { general = 0.95 }

[router.models."steady:latest"]
quality = { general = 0.9 }
"""
    for other in ("amx", "broken", "slow"):
        config += f'\n[router.models."{other}:latest"]\nquality = {{ general = 0.1 }}\n'
    server = start_server(tmp_path, models, config, env={"LOCALFORGE_RUNNER_FAULT": "segv-decode@crashy"})
    try:
        served = httpx.post(server.url + "/api/chat", timeout=120, json={
            "model": "auto", "stream": False, "messages": [{"role": "user", "content": "Say hello."}],
            "options": {"num_predict": 3}})
        assert served.status_code == 200, served.text
        assert served.headers["X-LocalForge-Model"] == "steady:latest"
        assert served.headers["X-LocalForge-Route"].startswith("fallback: crashy:latest failed")
        db = sqlite3.connect(server.data_dir / "localforge.db")
        learned = db.execute("select o.model, o.kind from outcomes o join routes r on r.id = o.route_id "
                             "where r.request_id = ?", [served.headers["X-LocalForge-Request-Id"]]).fetchall()
        db.close()
        assert ("crashy:latest", "error") in learned
    finally:
        stop_server(server)


def test_asking_for_the_default_context_reuses_the_loaded_runner(faulty: RunningServer) -> None:
    # steady's context is its training context, 2048 (below the server's default of 4096)
    assert chat(faulty, "steady").status_code == 200
    assert chat(faulty, "steady", num_ctx=2048).status_code == 200
    assert metric(faulty, "localforge_model_resident", "steady:latest") == 1
    assert chat(faulty, "steady", num_ctx=1024).status_code == 200
    assert metric(faulty, "localforge_model_resident", "steady:latest") == 2


def test_the_server_log_survives_concurrent_loads(tmp_path: Path, tiny_models: Path) -> None:
    """Issue 15: after concurrent loads the server's stdout and stderr ended up on /dev/null."""
    from concurrent.futures import ThreadPoolExecutor

    running = start_server(tmp_path, tiny_models)
    try:
        def load(n: int) -> int:
            body = {"model": ["tiny", "tiny-fim", "tiny-plain"][n % 3], "prompt": "hi", "stream": False,
                    "options": {"num_predict": 2, "num_ctx": 256 * (1 + n // 3)}}
            return httpx.post(running.url + "/api/generate", json=body, timeout=120).status_code

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(load, range(6))) == [200] * 6
        for fd in (1, 2):
            assert os.readlink(f"/proc/{running.process.pid}/fd/{fd}") == str(running.log_path)
    finally:
        stop_server(running)


def test_safe_mode_is_remembered_across_restarts(tmp_path: Path, models: Path) -> None:
    fault = {"LOCALFORGE_RUNNER_FAULT": "segv-first-decode@amx"}
    first = start_server(tmp_path, models, "", env=fault)
    try:
        assert chat(first, "amx").status_code == 200  # crashed once, healed
        assert metric(first, "localforge_runner_crashes_total", "amx:latest") == 1
    finally:
        stop_server(first)
    again = start_server(tmp_path, models, "", env=fault)  # the same data folder
    try:
        assert ollama.Client(host=again.url).show("amx").modelinfo["localforge.safe_mode"] is True
        assert chat(again, "amx").status_code == 200
        assert metric(again, "localforge_runner_crashes_total", "amx:latest") == 0
    finally:
        stop_server(again)


def runner_of(server: RunningServer) -> psutil.Process:
    (runner,) = runners(server)
    return runner


def test_a_crash_after_the_first_tokens_is_no_first_decode_crash(tmp_path: Path, models: Path) -> None:
    """An out-of-memory kill at token 30 of a runner's first answer is not llama.cpp's AMX fault:
    the model does not go into safe mode for it."""
    server = start_server(tmp_path, models)
    try:
        body = {"model": "slow", "prompt": "the", "options": {"num_predict": 500, "temperature": 0}}
        lines = []
        with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=120) as response:
            for line in response.iter_lines():
                lines.append(line)
                if len(lines) == 30:
                    runner_of(server).kill()
        assert "llama runner process has terminated" in lines[-1]  # the stream ends with the error
        client = ollama.Client(host=server.url)
        assert client.show("slow").modelinfo["localforge.safe_mode"] is False
        assert "restarted in safe mode" not in server.log()
        assert not (server.data_dir / "safe-mode.json").exists()
    finally:
        stop_server(server)


def test_a_runner_that_dies_while_loading_is_counted(tmp_path: Path, models: Path) -> None:
    server = start_server(tmp_path, models, env={"LOCALFORGE_RUNNER_FAULT": "segv-load@crashy"})
    try:
        answer = chat(server, "crashy")
        assert answer.status_code == 500
        assert "signal 11 (SIGSEGV)" in answer.json()["error"]
        assert metric(server, "localforge_runner_crashes_total", "crashy:latest") == 2  # and its retry
    finally:
        stop_server(server)


def test_requests_that_find_their_runner_gone_start_one_runner(tmp_path: Path, models: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = start_server(tmp_path, models, "parallel = 4\n")
    try:
        assert chat(server, "steady").status_code == 200
        for round_ in range(2):  # a third kill would reach the crash limit
            gone = runner_of(server)
            gone.kill()
            gone.wait(10)
            with ThreadPoolExecutor(4) as pool:
                codes = list(pool.map(lambda n: chat(server, "steady", seed=n).status_code, range(4)))
            assert codes == [200] * 4
            assert len(runners(server)) == 1, f"round {round_}: a second runner was started and orphaned"
    finally:
        stop_server(server)


def test_healing_in_safe_mode_is_no_crash_towards_the_limit(tmp_path: Path, models: Path) -> None:
    server = start_server(tmp_path, models, env={"LOCALFORGE_RUNNER_FAULT": "segv-first-decode@amx"})
    try:
        assert chat(server, "amx").status_code == 200  # crashed on its first decode, healed
        for _ in range(2):  # two real crashes: one short of the limit of three
            gone = runner_of(server)
            gone.kill()
            gone.wait(10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and httpx.get(server.url + "/api/ps").json()["models"]:
                time.sleep(0.05)
            assert chat(server, "amx").status_code == 200
    finally:
        stop_server(server)


def test_metrics_count_the_runners_steps_and_their_time_in_llama_decode(faulty: RunningServer) -> None:
    before = {name: metric(faulty, f"localforge_runner_{name}_total", "slow:latest")
              for name in ("steps", "step_seconds", "decode_seconds")}
    answers = [chat(faulty, "slow", num_predict=6).json() for _ in range(2)]
    after = {name: metric(faulty, f"localforge_runner_{name}_total", "slow:latest") for name in before}
    steps = after["steps"] - before["steps"]
    # one decode for the prompt and one for each token but the last (its Done comes with it)
    assert steps == sum(a["eval_count"] for a in answers)
    decode, step = after["decode_seconds"] - before["decode_seconds"], after["step_seconds"] - before["step_seconds"]
    assert 0 < decode < step  # the runner's loop is the rest of the step

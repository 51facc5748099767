"""Pulls that fit the GPU (issue 24): which file `hf.co/{owner}/{repo}` without a tag takes, for a
large and a small VRAM pool, partial offload, no GPU and a machine nothing fits; `pull --list`; an
explicit tag; a header that cannot be read. Against the stand-in Hub on loopback, with one tiny
model written at five quantizations (the same layers, different sizes)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from conftest import RunningServer, start_server, stop_server
from hub_server import Hub, start_hub
from tiny_gguf import write_tiny_llama

from localforge import config
from localforge.errors import BadRequest
from localforge.gguf import gguf_info
from localforge.resources import budget
from localforge.resources.placement import Pools
from localforge.store import pull
from localforge.store.fit import Header, Machine
from localforge.store.layout import ModelStore

MB = 1_000_000
ROOT = Path(__file__).parent.parent
QUANTS = {"F32": "F32", "F16": "F16", "Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q4_K_M": "Q4_K"}
NUM_CTX = 256  # with it each file needs its weights + 3.3 MB of context


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("quants")
    made = {name: write_tiny_llama(folder / f"tiny-{name}.gguf", n_embd=256, n_layers=8, quant=kind)
            for name, kind in QUANTS.items()}
    for name in ("Q4_K_M", "Q8_0"):
        made[f"blind-{name}"] = write_tiny_llama(folder / f"blind-{name}.gguf", n_embd=256, n_layers=8,
                                                 quant=QUANTS[name], extra_vocab=10)
    made["huge"] = write_tiny_llama(folder / "huge-F32.gguf", n_embd=512, n_layers=2)
    return made


@pytest.fixture(scope="module")
def hub(files: dict[str, Path]) -> Iterator[Hub]:
    running = start_hub()
    for name in QUANTS:
        running.add("fit/tiny", f"tiny-{name}.gguf", files[name].read_bytes())
        if name != "Q4_K_M":
            running.add("fit/noq4", f"tiny-{name}.gguf", files[name].read_bytes())
    for name in ("Q4_K_M", "Q8_0"):
        running.add("fit/blind", f"blind-{name}.gguf", files[f"blind-{name}"].read_bytes())
        running.no_ranges.add(f"blind-{name}.gguf")
    running.add("fit/huge", "huge-F32.gguf", files["huge"].read_bytes())
    yield running
    running.stop()


def survey(hub: Hub, model: str, store: Path, vram: float, ram: float, overhead: float = 0) -> pull.Plan:
    """What a pull of `model` would take on a machine with these pools (MB), and a runner's own
    VRAM as the scheduler measured it."""
    name = pull.hub_name(model)
    assert name is not None
    machine = Machine(Pools(int(vram * MB), int(ram * MB)), NUM_CTX, overhead=int(overhead * MB))
    return anyio.run(pull.survey, ModelStore(store), hub.url, name, machine)


def fits(plan: pull.Plan) -> dict[str, str]:
    return {file.quant: fit.label for file, fit in zip(plan.files, plan.fits, strict=True) if fit}


# the choice, for each kind of machine
def test_a_large_vram_pool_takes_the_largest_file(hub: Hub, tmp_path: Path) -> None:
    plan = survey(hub, "hf.co/fit/tiny", tmp_path, vram=64, ram=64)
    assert plan.chosen.quant == "F32"
    assert plan.reason == "F32: 21.6 MB of weights + 3.3 MB of context fits 64.0 MB of VRAM"
    assert set(fits(plan).values()) == {"GPU"}


def test_a_small_vram_pool_takes_the_largest_file_that_fits_it_whole(hub: Hub, tmp_path: Path) -> None:
    plan = survey(hub, "hf.co/fit/tiny", tmp_path, vram=9, ram=64)
    assert plan.chosen.quant == "Q8_0"
    assert plan.reason == "Q8_0: 5.7 MB of weights + 3.3 MB of context fits 9.0 MB of VRAM"
    assert fits(plan) == {"Q4_K_M": "GPU", "Q6_K": "GPU", "Q8_0": "GPU", "F16": "GPU+CPU 44%",
                          "F32": "GPU+CPU 22%"}


def test_the_runners_measured_overhead_is_room_the_model_does_not_get(hub: Hub, tmp_path: Path) -> None:
    plan = survey(hub, "hf.co/fit/tiny", tmp_path, vram=9, ram=64, overhead=2)
    # Q8_0's 9.0 MB and Q6_K's 7.7 MB no longer fit beside the runner's 2 MB; Q4_K_M's 6.4 MB does
    assert plan.chosen.quant == "Q4_K_M"
    assert fits(plan)["Q8_0"].startswith("GPU+CPU") and fits(plan)["Q6_K"].startswith("GPU+CPU")


def test_when_nothing_fits_the_gpu_whole_the_largest_with_half_its_layers_there(
        hub: Hub, tmp_path: Path) -> None:
    plan = survey(hub, "hf.co/fit/tiny", tmp_path, vram=6, ram=64)
    assert fits(plan) == {"Q4_K_M": "GPU+CPU 77%", "Q6_K": "GPU+CPU 66%", "Q8_0": "GPU+CPU 55%",
                          "F16": "GPU+CPU 33%", "F32": "GPU+CPU 11%"}
    assert plan.chosen.quant == "Q8_0"
    assert plan.reason == ("Q8_0: 5.7 MB of weights + 3.3 MB of context does not fit 6.0 MB of VRAM; "
                           "55% of its layers run on the GPU, the rest on the CPU (64.0 MB of RAM); no "
                           "file fits the GPU whole; the largest that keeps at least 50% of its layers there")


def test_on_a_tiny_gpu_the_file_that_keeps_the_most_layers_there(hub: Hub, tmp_path: Path) -> None:
    plan = survey(hub, "hf.co/fit/tiny", tmp_path, vram=2, ram=64)
    assert plan.chosen.quant == "Q4_K_M"
    assert fits(plan)["Q4_K_M"] == "GPU+CPU 11%" and fits(plan)["F32"] == "CPU"
    assert plan.reason.endswith("the one that keeps the most layers there")


def test_without_a_gpu_ollamas_default_else_the_largest_that_fits_ram(hub: Hub, tmp_path: Path) -> None:
    plan = survey(hub, "hf.co/fit/tiny", tmp_path, vram=0, ram=64)
    assert plan.chosen.quant == "Q4_K_M" and set(fits(plan).values()) == {"CPU"}
    assert plan.reason == ("Q4_K_M: 3.0 MB of weights + 3.3 MB of context fits 64.0 MB of RAM (no GPU); "
                           "Ollama's default: on the CPU a larger file is slower per token")
    plan = survey(hub, "hf.co/fit/noq4", tmp_path, vram=0, ram=10)
    assert fits(plan) == {"Q6_K": "CPU", "Q8_0": "CPU", "F16": "too big", "F32": "too big"}
    assert plan.chosen.quant == "Q8_0"
    assert plan.reason.endswith("no Q4_K_M here; the largest file that fits")


def test_a_machine_that_nothing_fits_is_told_the_smallest_and_what_it_needs(hub: Hub, tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match=r"no file fits this machine \(1.0 MB of VRAM \+ 5.0 MB of RAM\): "
                       r"the smallest, Q4_K_M, needs 3.0 MB of weights \+ 3.3 MB of context; name a quant"):
        survey(hub, "hf.co/fit/tiny", tmp_path, vram=1, ram=5)


def test_an_explicit_tag_is_honoured_even_when_it_is_too_big(hub: Hub, tmp_path: Path) -> None:
    plan = survey(hub, "hf.co/fit/tiny:f32", tmp_path, vram=9, ram=5)
    assert plan.chosen.quant == "F32"
    assert plan.reason == ("warning: F32 (as named): 21.6 MB of weights + 3.3 MB of context is more than "
                           "9.0 MB of VRAM + 5.0 MB of RAM; it will not load until memory is freed or the "
                           "budgets are raised")
    plan = survey(hub, "hf.co/fit/tiny:Q6_K", tmp_path, vram=64, ram=64)
    assert plan.reason == "Q6_K (as named): 4.4 MB of weights + 3.3 MB of context fits 64.0 MB of VRAM"


# the header
def test_one_files_first_bytes_stand_for_every_quantization(
        hub: Hub, tmp_path: Path, files: dict[str, Path]) -> None:
    before = len(hub.downloads)
    plan = survey(hub, "hf.co/fit/tiny", tmp_path, vram=9, ram=64)
    smallest = files["Q4_K_M"].stat().st_size
    assert hub.downloads[before:] == [("tiny-Q4_K_M.gguf", f"bytes=0-{smallest - 1}")]
    # each file's weights, estimated from that one header, are within 0.1% of its own header's
    for file, fit in zip(plan.files, plan.fits, strict=True):
        own = gguf_info.read(files[file.quant]).tensors.total
        assert fit is not None and abs(fit.weights - own) <= own / 1000, file.path
    assert isinstance(plan.header, Header) and plan.header.info is not None
    assert plan.header.info.arch_value("block_count") == 8


def test_a_header_read_from_the_first_bytes_and_one_that_is_cut_short(files: dict[str, Path]) -> None:
    data = files["Q8_0"].read_bytes()
    whole = gguf_info.read(files["Q8_0"])
    head = gguf_info.read_header(data[:200_000], "tiny-Q8_0.gguf", len(data))
    assert (head.metadata, head.tensors, head.size) == (whole.metadata, whole.tensors, whole.size)
    with pytest.raises(gguf_info.Truncated):
        gguf_info.read_header(data[:3_000], "tiny-Q8_0.gguf", len(data))
    with pytest.raises(BadRequest, match="is not a GGUF file"):
        gguf_info.read_header(b"PK\x03\x04" + data[4:200_000], "x.gguf", len(data))


def test_a_header_that_cannot_be_read_gives_an_approximation_that_says_so(hub: Hub, tmp_path: Path) -> None:
    plan = survey(hub, "hf.co/fit/blind", tmp_path, vram=64, ram=64)
    assert plan.header.info is None
    assert plan.chosen.quant == "Q8_0"
    assert plan.reason == ("Q8_0: 5.8 MB of weights + 576.0 KB of context fits 64.0 MB of VRAM (approximate: "
                           "the header of blind-Q4_K_M.gguf could not be read: Hugging Face answered 500 "
                           "for the first bytes of blind-Q4_K_M.gguf; weights are taken as each file's "
                           "size and the context as a tenth of them)")


def test_the_server_uses_the_schedulers_pools_from_the_settings() -> None:
    settings = config.load(environ={"LOCALFORGE_VRAM_BUDGET": "8GiB", "LOCALFORGE_RAM_BUDGET": "16GB",
                                    "LOCALFORGE_DEFAULT_NUM_CTX": "8192", "LOCALFORGE_PARALLEL": "2"})
    found = budget.detect(settings.vram_budget, settings.ram_budget, offload=lambda: True)
    machine = Machine.of(settings, found.pools)
    assert (machine.pools, machine.num_ctx, machine.slots) == (Pools(8 * 2**30, 16 * 10**9), 8192, 2)
    assert machine.describe() == "8.6 GB of VRAM + 16.0 GB of RAM"


# the command line, against a server (this machine's pools: no GPU, as `vram_budget = 0` says)
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, hub: Hub) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("fit"), tmp_path_factory.mktemp("fit-models"),
                           env={"HF_ENDPOINT": hub.url, "LOCALFORGE_VRAM_BUDGET": "0",
                                "LOCALFORGE_RAM_BUDGET": "10MB", "LOCALFORGE_DEFAULT_NUM_CTX": str(NUM_CTX)})
    yield running
    stop_server(running)


def cli(*args: str, server: RunningServer) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "localforge.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "OLLAMA_HOST": server.url, "PYTHONPATH": path}, timeout=120)


def test_pull_list_shows_each_file_its_size_and_where_it_fits(server: RunningServer, hub: Hub) -> None:
    before = len(hub.downloads)
    listed = cli("pull", "--list", "hf.co/fit/tiny", server=server)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "hf.co/fit/tiny:latest: 10.0 MB of RAM (no GPU), context 256",
        "     FILE                SIZE       FITS",
        "*    tiny-Q4_K_M.gguf    3.1 MB     CPU",
        "     tiny-Q6_K.gguf      4.4 MB     CPU",
        "     tiny-Q8_0.gguf      5.8 MB     CPU",
        "     tiny-F16.gguf       10.8 MB    too big",
        "     tiny-F32.gguf       21.6 MB    too big",
        "* Q4_K_M: 3.0 MB of weights + 3.3 MB of context fits 10.0 MB of RAM (no GPU); Ollama's default: "
        "on the CPU a larger file is slower per token"]
    assert all(r and r.startswith("bytes=0-") for _, r in hub.downloads[before:])  # nothing downloaded


def test_pull_says_which_file_it_took_and_why(server: RunningServer, files: dict[str, Path]) -> None:
    pulled = cli("pull", "hf.co/fit/noq4", server=server)
    assert pulled.returncode == 0, pulled.stderr
    lines = pulled.stderr.splitlines()
    assert lines[:2] == ["pulling manifest", "Q8_0: 5.7 MB of weights + 3.3 MB of context fits 10.0 MB of "
                         "RAM (no GPU); no Q4_K_M here; the largest file that fits"]
    assert lines[-1] == "success"
    shown = cli("list", server=server).stdout
    digest = hashlib.sha256(files["Q8_0"].read_bytes()).hexdigest()
    assert any(line.startswith("hf.co/fit/noq4:latest") and digest[:12] in line for line in shown.splitlines())


def test_a_named_quant_too_big_is_pulled_with_a_warning(server: RunningServer) -> None:
    pulled = cli("pull", "hf.co/fit/tiny:F16", server=server)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stderr.splitlines()[1] == (
        "warning: F16 (as named): 10.8 MB of weights + 3.3 MB of context is more than 10.0 MB of RAM "
        "(no GPU); it will not load until memory is freed or the budgets are raised")
    assert "hf.co/fit/tiny:F16" in cli("list", server=server).stdout


def test_a_repository_nothing_fits_is_an_error_before_any_download(server: RunningServer, hub: Hub) -> None:
    before = len(hub.downloads)
    pulled = cli("pull", "hf.co/fit/huge", server=server)
    assert pulled.returncode == 1
    assert pulled.stderr == ("Error: no file fits this machine (10.0 MB of RAM (no GPU)): the smallest, "
                             "F32, needs 22.1 MB of weights + 3.3 MB of context; name a quant to pull one "
                             "anyway\n")
    assert all(r and r.startswith("bytes=0-") for _, r in hub.downloads[before:])
    assert "huge" not in cli("list", server=server).stdout
    listed = cli("pull", "--list", "llama3.2", server=server)
    assert listed.returncode == 1 and "is not a Hugging Face name" in listed.stderr

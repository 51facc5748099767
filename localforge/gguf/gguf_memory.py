"""What a llama.cpp configuration takes in memory, estimated from its GGUF before it loads.

The parts are the ones llama.cpp allocates and logs (`localforge.runner.buffers` reads them back
after a load, and the tests hold this estimate to them):
- weights: each tensor's bytes from the GGUF's tensor table, grouped by layer;
- the KV cache: f16 K and V for every layer, `num_ctx` cells for each of the runner's slots;
- the compute buffer: the larger of one batch's activations with its attention mask and its
  logits (`4 * batch * (1 + 4 * embd) + 2 * ctx * batch` against `4 * batch * (embd + vocab)`,
  Ollama's estimator with flash attention, which runners leave to llama.cpp's `auto` and which
  is on wherever the backend has it);
- the output buffer: the logits of each slot (every token's, and the embeddings, for an
  embedding configuration);
- on a CPU with AMX-INT8 (unless safe mode turns llama.cpp's extra buffer types off): a repacked
  copy of each weight matrix the AMX kernels take, held beside the mapped file for the layers in RAM.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from localforge.gguf import gguf_info
from localforge.resources.placement import Shape

F16, F32 = 2, 4


def kv_bytes_per_layer(info: gguf_info.GGUFInfo, n_ctx: int) -> int:
    heads = int(info.arch_value("attention.head_count") or 1)
    kv_heads = int(info.arch_value("attention.head_count_kv") or heads)
    embd = int(info.arch_value("embedding_length") or 0)
    key = int(info.arch_value("attention.key_length") or embd // max(heads, 1))
    value = int(info.arch_value("attention.value_length") or key)
    return kv_heads * (key + value) * n_ctx * F16


def compute_bytes(info: gguf_info.GGUFInfo, n_ctx: int, n_batch: int) -> int:
    embd = int(info.arch_value("embedding_length") or 0)
    activations = F32 * n_batch * (1 + 4 * embd) + F16 * n_ctx * n_batch
    return max(activations, F32 * n_batch * (embd + vocab_size(info)))


def vocab_size(info: gguf_info.GGUFInfo) -> int:
    return int(info.arch_value("vocab_size") or len(info.tokens) or 32_000)


def output_bytes(info: gguf_info.GGUFInfo, n_batch: int, slots: int, embedding: bool) -> int:
    vocab, embd = vocab_size(info), int(info.arch_value("embedding_length") or 0)
    return F32 * (vocab + embd) * n_batch if embedding else F32 * vocab * slots


@cache
def cpu_has_amx() -> bool:
    """Whether this CPU has what llama.cpp's AMX kernels need (a native build then has them)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_int8" in flags and "avx512_vnni" in flags


def shape(path: Path, params: dict[str, Any], slots: int, *, repacks: bool = False) -> Shape:
    """The configuration's `Shape` for llama-cpp-python load `params` and `slots` sequences;
    `repacks`: llama.cpp's AMX kernels keep their own copy of the weights in RAM."""
    return shape_of(gguf_info.read(path), params, slots, repacks=repacks)


def shape_of(info: gguf_info.GGUFInfo, params: dict[str, Any], slots: int, *, repacks: bool = False,
             tensors: gguf_info.TensorBytes | None = None) -> Shape:
    """`shape` from a header already read; `tensors` replaces its weights (another quantization
    of the same model, whose header was not read)."""
    n_ctx, n_batch = int(params["n_ctx"]), int(params.get("n_batch", 512))
    embedding = bool(params.get("embedding"))
    kv = kv_bytes_per_layer(info, n_ctx) * slots
    tensors = tensors or info.tensors
    return Shape(layers=tuple(weights + kv for weights in tensors.layers), output=tensors.output,
                 output_cpu=tensors.output_cpu,
                 host=tensors.input + output_bytes(info, n_batch, slots, embedding),
                 compute=compute_bytes(info, n_ctx, n_batch),
                 repack=tensors.repack if repacks else (), output_repack=tensors.output_repack if repacks else 0)

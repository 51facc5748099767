"""Tiny random-weight GGUF models for fast tests, written with the `gguf` package.

They load and generate through real llama.cpp in milliseconds; their answers are noise, so tests
that need sense use the real SmolLM2 model instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType, quants

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = ["▁the", "▁a", "▁is", "▁of", "▁and", "▁to", "▁Paris", "▁France", "▁capital",
         "{", "}", "\"", ":", ",", "▁name", "▁age", "[", "]", "0", "1", "2", "▁true", "▁null"]


def _vocab(specials: list[str], extra: int = 0) -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TokenType.BYTE] * 256
    tokens += specials
    types += [TokenType.CONTROL] * len(specials)
    words = [*WORDS, *(f"▁w{i}" for i in range(extra))]
    tokens += ["▁", *words]
    types += [TokenType.NORMAL] * (len(words) + 1)
    scores = [0.0] * len(tokens)
    for i in range(len(tokens) - len(words), len(tokens)):
        scores[i] = -float(i)
    return tokens, scores, [int(t) for t in types]


# the weight types `quant` may name, and the file type each makes the model
QUANTS = {"F32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
          "F16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
          "Q8_0": (GGMLQuantizationType.Q8_0, LlamaFileType.MOSTLY_Q8_0),
          "Q6_K": (GGMLQuantizationType.Q6_K, LlamaFileType.MOSTLY_Q6_K),
          "Q4_K": (GGMLQuantizationType.Q4_K, LlamaFileType.MOSTLY_Q4_K_M),
          "Q4_0": (GGMLQuantizationType.Q4_0, LlamaFileType.MOSTLY_Q4_0)}


def write_tiny_llama(path: Path, *, chat_template: str | None = CHATML, seed: int = 0,
                     n_embd: int = 32, n_layers: int = 1, context_length: int = 2048,
                     fim: bool = False, name: str = "tiny-llama", extra_vocab: int = 0,
                     quant: str = "F32") -> Path:
    """Write a random-weight llama-architecture GGUF (about 100 KB) and return its path.

    `extra_vocab` adds plain word tokens; with thousands of them the end-of-text token becomes
    rare, so a greedy answer runs to num_predict (tests that need a request to take a while).
    `quant` stores the weight matrices as one of `QUANTS` (the norms stay F32): the same model in
    several sizes, as a repository's quantizations are. The gguf package cannot quantize to the K
    quants, so those blocks are zeros (a model whose matrices are all 0); they need `n_embd` a
    multiple of 256."""
    weight_type, file_type = QUANTS[quant]
    rng = np.random.default_rng(seed)
    specials = ["<|im_start|>", "<|im_end|>"] + (["<fim_prefix>", "<fim_suffix>", "<fim_middle>"] if fim else [])
    tokens, scores, types = _vocab(specials, extra_vocab)
    n_vocab, n_head, n_ff = len(tokens), 2, 2 * n_embd
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(context_length)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(file_type)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(tokens.index("<|im_end|>") if chat_template else 2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    if chat_template:
        writer.add_chat_template(chat_template)

    def weight(name: str, *shape: int) -> None:
        values = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        if weight_type == GGMLQuantizationType.F32:
            writer.add_tensor(name, values)
        elif quant.endswith("_K"):
            blocks = np.zeros(quants.quant_shape_to_byte_shape(shape, weight_type), dtype=np.uint8)
            writer.add_tensor(name, blocks, raw_dtype=weight_type)
        else:
            writer.add_tensor(name, quants.quantize(values, weight_type), raw_dtype=weight_type)

    weight("token_embd.weight", n_vocab, n_embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    weight("output.weight", n_vocab, n_embd)
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for part in ("q", "k", "v", "output"):
            weight(f"blk.{i}.attn_{part}.weight", n_embd, n_embd)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        weight(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        weight(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        weight(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path

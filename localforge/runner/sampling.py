"""How a sequence picks its next token: llama.cpp's sampler chain, with two shortcuts that give
the same token for less.

The chain is llama-cpp-python's (`Llama._init_sampler`), in its order: penalties over the answer's
last tokens, the grammar, then greedy, mirostat 1 or 2, or top-k / typical / top-p / min-p /
temperature / dist. Every function is called through the binding's own declaration of its C
signature. The shortcuts:

- The repeat penalty (Ollama's default 1.1) is applied to the row of logits in place, to the
  distinct tokens of the window only, as llama.cpp's penalties sampler computes it in float32 (a
  logit at or below zero times the penalty, above zero divided by it). llama.cpp's sampler walks
  the whole vocabulary with a hash lookup per token to find them (about 0.2 ms a token for a
  49k vocabulary, on every sequence of every step). With a frequency or presence penalty the
  chain keeps llama.cpp's sampler (its sums may be fused differently than numpy would).
- A greedy answer with no grammar takes the first largest logit (llama.cpp's greedy sampler's
  choice) straight from the row, without copying the vocabulary into candidates.
"""

from __future__ import annotations

import json
from typing import Any

import llama_cpp.llama_cpp as llama
import numpy as np
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from localforge.runner.engine import RequestError


class Sampler:
    """One sequence's sampling: its options, seed and grammar."""

    def __init__(self, vocab: Any, n_vocab: int, n_ctx: int, options: dict[str, Any],
                 schema: str | dict[str, Any] | None) -> None:
        self.vocab, self.n_vocab = vocab, n_vocab  # the model's, which its runner holds
        last_n = int(options.get("repeat_last_n", 64))
        self.last_n = n_ctx if last_n < 0 else last_n
        self.repeat = np.float32(options.get("repeat_penalty", 1.1))
        frequency, presence = float(options.get("frequency_penalty", 0.0)), float(options.get("presence_penalty", 0.0))
        penalised = self.last_n > 0 and (self.repeat != 1 or frequency or presence)
        self.in_place = penalised and not frequency and not presence  # else llama.cpp's sampler
        self.greedy = (float(options.get("temperature", 0.8)) <= 0 and schema in (None, "")
                       and (self.in_place or not penalised))
        self.chain = None if self.greedy else self._chain(options, schema, frequency, presence)

    def _chain(self, o: dict[str, Any], schema: str | dict[str, Any] | None, frequency: float,
               presence: float) -> Any:
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        add = lambda sampler: llama.llama_sampler_chain_add(chain, sampler)  # noqa: E731
        if not self.in_place:
            add(llama.llama_sampler_init_penalties(self.n_vocab, self.last_n, float(self.repeat),
                                                   frequency, presence))
        if schema not in (None, ""):
            sampler = llama.llama_sampler_init_grammar(self.vocab, grammar_text(schema).encode(), b"root")
            if not sampler:
                llama.llama_sampler_free(chain)
                raise RequestError("bad_request", "invalid format: llama.cpp cannot build a grammar from it")
            add(sampler)
        seed = o.get("seed")
        seed = llama.LLAMA_DEFAULT_SEED if seed is None else int(seed) & 0xFFFFFFFF
        temperature = float(o.get("temperature", 0.8))
        if temperature <= 0:
            add(llama.llama_sampler_init_greedy())
        elif int(o.get("mirostat_mode", 0)) == 1:
            add(llama.llama_sampler_init_temp(temperature))
            add(llama.llama_sampler_init_mirostat(self.n_vocab, seed, float(o.get("mirostat_tau", 5.0)),
                                                  float(o.get("mirostat_eta", 0.1)), 100))
        elif int(o.get("mirostat_mode", 0)) == 2:
            add(llama.llama_sampler_init_temp(temperature))
            add(llama.llama_sampler_init_mirostat_v2(seed, float(o.get("mirostat_tau", 5.0)),
                                                     float(o.get("mirostat_eta", 0.1))))
        else:
            add(llama.llama_sampler_init_top_k(int(o.get("top_k", 40))))
            add(llama.llama_sampler_init_typical(float(o.get("typical_p", 1.0)), 1))
            add(llama.llama_sampler_init_top_p(float(o.get("top_p", 0.9)), 1))
            add(llama.llama_sampler_init_min_p(float(o.get("min_p", 0.0)), 1))
            add(llama.llama_sampler_init_temp(temperature))
            add(llama.llama_sampler_init_dist(seed))
        return chain

    def sample(self, ctx: Any, index: int, generated: list[int]) -> int:
        """The next token from the logits of batch row `index`, after the answer's `generated` tokens."""
        if self.in_place or self.greedy:
            row = np.ctypeslib.as_array(llama.llama_get_logits_ith(ctx, index), shape=(self.n_vocab,))
            if self.in_place and generated:
                self._penalise(row, generated[-self.last_n:])
            if self.greedy:
                return int(row.argmax())
        return int(llama.llama_sampler_sample(self.chain, ctx, index))

    def _penalise(self, row: np.ndarray, window: list[int]) -> None:
        seen = np.fromiter(set(window), dtype=np.int64)
        logits = row[seen]
        row[seen] = np.where(logits <= 0, logits * self.repeat, logits / self.repeat)

    def free(self) -> None:
        if self.chain is not None:
            llama.llama_sampler_free(self.chain)
            self.chain = None


def grammar_text(schema: str | dict[str, Any]) -> str:
    if schema == "json":
        return JSON_GBNF
    if isinstance(schema, dict):
        try:
            return json_schema_to_gbnf(json.dumps(schema))
        except Exception as exc:  # the converter raises bare Exceptions
            raise RequestError("bad_request", f"invalid format schema: {exc}") from exc
    raise RequestError("bad_request", "format must be \"json\" or a JSON schema object")

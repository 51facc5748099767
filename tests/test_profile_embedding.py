"""The default embedder: all-MiniLM-L6-v2 from the installed package, run in numpy, equal to
sentence-transformers' vectors."""

from __future__ import annotations

import numpy as np
import pytest

from localforge.inference import Inference
from localforge.profile.base import Embedder, Profile
from localforge.profile.embedding import EmbeddingProfiler, MiniLMEmbedder, SentenceTransformerEmbedder

TEXTS = ["What is the capital of France?", "Write a Python function that reverses a linked list.",
         "Natalia sold clips to 48 of her friends in April, and half as many in May. How many in all?",
         "hi", "word " * 400]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_vectors_are_normalised_float32_rows_of_384(minilm: MiniLMEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    vectors = minilm.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)


def test_a_batch_gives_the_same_vectors_as_one_text_at_a_time(minilm: MiniLMEmbedder) -> None:
    batch = minilm.embed(TEXTS)
    single = np.stack([minilm.embed([t])[0] for t in TEXTS])
    assert np.abs(batch - single).max() < 1e-5
    assert np.array_equal(minilm.embed([TEXTS[0]]), minilm.embed([TEXTS[0]]))  # the cache


def test_similar_requests_are_closer_than_unrelated_ones(minilm: MiniLMEmbedder) -> None:
    a, b, c = minilm.embed(["How do I reverse a list in Python?", "Reversing a Python list: how?",
                            "Recommend a good mystery novel."])
    assert a @ b > 0.8 > a @ c + 0.3


def test_numpy_vectors_match_sentence_transformers(minilm: MiniLMEmbedder) -> None:
    pytest.importorskip("sentence_transformers")
    reference = SentenceTransformerEmbedder("all-MiniLM-L6-v2-torch").embed(TEXTS)
    ours = minilm.embed(TEXTS)
    assert (ours * reference).sum(axis=1).min() > 0.9999


def test_the_profiler_embeds_the_text_unless_a_vector_is_given(minilm: MiniLMEmbedder) -> None:
    profiler = EmbeddingProfiler()
    profiler.embedder = minilm
    request = Inference(model="auto", kind="generate", prompt=TEXTS[0])
    profile = Profile(text=TEXTS[0])
    profiler.profile(request, profile)
    assert profile.embedding is not None and np.allclose(profile.embedding, minilm.embed([TEXTS[0]])[0])
    given = np.zeros(384, dtype=np.float32)
    cached = Profile(text=TEXTS[0], embedding=given)
    profiler.profile(request, cached)
    assert cached.embedding is given
    empty = Profile(text="")
    profiler.profile(Inference(model="auto", kind="generate"), empty)
    assert empty.embedding is None

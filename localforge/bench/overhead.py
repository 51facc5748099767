"""`localforge bench overhead`: what routing one request costs, embedding included.

The routing decision is measured as the server makes it for `auto`: the profile (every
registered profiler, the embedding too), the policies, and the router's scoring with its memory
lookup (one hnswlib search) over the demo models and a remote stand-in, with a memory that
grows as the benchmark records each decision and an outcome for it. Recording is not timed: the
server records after the answer, off the request's path. The prompts are generated (seeded) to
vary in kind and length, from a greeting to a multi-paragraph question, and each is unique so
that the embedder's cache never answers; the task classifier alone is timed on the same prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localforge.config import Settings
from localforge.inference import Inference, Message
from localforge.profile.profiler import Profiling

PROMPTS = 1200
WARM_UP = 100
REMOTE_EXAMPLE = "remote-example"  # a priced remote model, so that policies and cost terms work

_SUBJECTS = ["a linked list", "the French Revolution", "compound interest", "photosynthesis",
             "a REST API", "prime numbers", "the water cycle", "a binary heap", "supply and demand",
             "neural networks", "the Roman Empire", "quantum tunnelling", "a SQL join", "tax brackets"]
_OPENERS = ["Explain", "Summarise", "Write a Python function for", "What is", "Compare two views of",
            "Give three examples of", "Prove a basic fact about", "Translate into German a sentence on"]
_FILLER = ("The details matter here because the answer will be used in a report that others read "
           "carefully, so please be precise about definitions, assumptions and edge cases. ")


def prompts(n: int = PROMPTS, seed: int = 0) -> list[Inference]:
    """`n` unique requests: short chats, coding asks, multiple-choice questions, word problems,
    long multi-paragraph prompts, some with a system prompt and earlier turns."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        subject, opener = rng.choice(_SUBJECTS), rng.choice(_OPENERS)
        shape = i % 5
        if shape == 0:
            text = f"{opener} {subject}. (#{i})"
        elif shape == 1:
            text = (f"Which statement about {subject} is correct? (question {i})\n"
                    + "\n".join(f"{c}. {rng.choice(_SUBJECTS)} is related to {rng.choice(_SUBJECTS)}"
                                for c in "ABCD"))
        elif shape == 2:
            a, b = rng.randint(2, 500), rng.randint(2, 90)
            text = (f"A shop sells {a} items on Monday and {b}% more on Tuesday. Each item costs "
                    f"${rng.randint(1, 40)}. How much revenue over both days? (#{i})")
        elif shape == 3:
            text = f"{opener} {subject}. " + _FILLER * rng.randint(2, 12) + f"(#{i})"
        else:
            text = f"hi, quick one #{i}: {subject}?"
        if i % 3 == 0:
            history = [Message("user", f"Earlier question about {rng.choice(_SUBJECTS)}"),
                       Message("assistant", "Here is an earlier answer.")]
            out.append(Inference(model="auto", kind="chat", messages=[
                Message("system", "You are a helpful assistant."), *history, Message("user", text)]))
        else:
            out.append(Inference(model="auto", kind="generate", prompt=text))
    return out


@dataclass(slots=True)
class Timings:
    decision: list[float]
    profile: list[float]
    embedding: list[float]
    route: list[float]
    classifier: list[float]
    decision_cpu: list[float]  # this thread's CPU time: the decision's cost on an idle machine
    routed: bool
    memory_routes: int


class RoutingStep:
    """The server's decision for one `auto` request: profile -> policies -> router.decide."""

    def __init__(self, settings: Settings, profiling: Profiling) -> None:
        from localforge.config.router import ModelFacts
        from localforge.memory.db import Database, migrate
        from localforge.memory.outcomes import Memory
        from localforge.route.decision import Candidate
        from localforge.route.facts import DEMO_FACTS, routing_facts
        from localforge.route.router import Router

        self.profiling = profiling
        self.settings = settings.router
        configured = dict(settings.router.models)
        if not configured:
            configured[REMOTE_EXAMPLE] = ModelFacts(locality="remote", input_price=10.0, output_price=30.0,
                                                    context_length=128000, quality={"general": 0.8})
        names = sorted({*DEMO_FACTS, *configured})
        self.candidates = [Candidate(m, routing_facts(m, None, configured)) for m in names]
        self.db = Database(memory=True)
        migrate(self.db)
        dimensions = getattr(profiling.embedder, "dimensions", 384)
        self.memory = Memory(self.db, dimensions)
        self.memory.open()
        self.router = Router(self.settings, self.memory, dimensions)
        self.rng = random.Random(0)

    def decide(self, request: Inference) -> tuple[Any, Any, Any, float, float, float]:
        """The timed part; returns what `record` needs, the seconds spent profiling and routing,
        and the CPU seconds this thread spent on both."""
        from localforge.route import policies

        cpu = time.thread_time()
        started = time.perf_counter()
        profile = self.profiling.profile(request)
        profiled = time.perf_counter()
        kept, removed = policies.apply(profile, self.candidates, self.settings)
        decision, context = self.router.decide(profile, kept, request.request_id, None, removed)
        ended = time.perf_counter()
        return profile, decision, context, profiled - started, ended - profiled, time.thread_time() - cpu

    def record(self, profile: Any, decision: Any, context: Any) -> None:
        """What the server does after the answer: the route and a (random) outcome for it."""
        route_id = self.router.remember(decision, profile, context)
        chosen = next(s for s in decision.scored if s.model == decision.chosen)
        self.router.learn(route_id, decision.chosen, float(self.rng.random() < 0.6), "bench", context,
                          chosen.parts["prior"])


def measure(settings: Settings, n: int = PROMPTS, warm_up: int = WARM_UP, progress: bool = True,
            route: bool = True) -> Timings:
    from localforge import plugins

    profiling = Profiling.from_plugins(plugins.make_manager(), settings)
    for thread in profiling.warm():
        thread.join()
    step = None
    if route:
        try:
            step = RoutingStep(settings, profiling)
        except ImportError as exc:  # a build without the router: time what there is
            print(f"  the router is not available ({exc}); timing the profile alone", file=sys.stderr)
    requests = prompts(n + warm_up)
    t = Timings([], [], [], [], [], [], step is not None, 0)
    classifier = next(p for p in profiling.profilers if p.name == "task").classifier  # type: ignore[attr-defined]
    for i, request in enumerate(requests):
        if step is not None:
            profile, decision, context, profile_s, route_s, cpu = step.decide(request)
            step.record(profile, decision, context)
        else:
            cpu, started = time.thread_time(), time.perf_counter()
            profile = profiling.profile(request)
            profile_s, route_s, cpu = time.perf_counter() - started, 0.0, time.thread_time() - cpu
        started = time.perf_counter()
        classifier.probabilities(profile.text)
        classifier_s = time.perf_counter() - started
        if i >= warm_up:
            t.decision.append(profile_s + route_s)
            t.decision_cpu.append(cpu)
            t.profile.append(profile_s)
            t.route.append(route_s)
            t.embedding.append(profile.timings_ns.get("embedding", 0) / 1e9)
            t.classifier.append(classifier_s)
        if progress and (i + 1) % 100 == 0:
            phase = "warm-up" if i < warm_up else "measured"
            print(f"  {i + 1}/{len(requests)} requests ({phase})", file=sys.stderr, flush=True)
    t.memory_routes = len(requests) if step is not None else 0
    return t


def figures(t: Timings) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float]:
        ms = np.asarray(values) * 1e3
        return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}

    out: dict[str, Any] = {"prompts": len(t.decision), "router_included": t.routed,
                           "memory_routes_at_end": t.memory_routes, "load_average": os.getloadavg()[0]}
    out["decision"] = stats(t.decision)
    out["decision_cpu"] = stats(t.decision_cpu)
    out["profile"] = stats(t.profile)
    out["embedding"] = stats(t.embedding)
    if t.routed:
        out["policies_and_scoring"] = stats(t.route)
    out["classifier"] = stats(t.classifier)
    return out


def table(f: dict[str, Any]) -> str:
    labels = {"decision": "routing decision (all below)" if f["router_included"] else "profile only",
              "decision_cpu": "  its CPU time (idle-machine cost)",
              "profile": "  profile (all profilers)", "embedding": "    embedding (MiniLM)",
              "policies_and_scoring": "  policies + memory + scoring", "classifier": "task classifier alone"}
    rows = [["stage", "p50 ms", "p99 ms", "mean ms", "max ms"]]
    for key, label in labels.items():
        if key in f:
            s = f[key]
            rows.append([label, f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", f"{s['mean_ms']:.2f}",
                         f"{s['max_ms']:.2f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.append(f"\n{f['prompts']} varied prompts after warm-up; memory held "
                 f"{f['memory_routes_at_end']} routes at the end; load average "
                 f"{f['load_average']:.2f} (other processes share the cores: wall-clock figures "
                 "include their time, CPU time does not)")
    return "\n".join(lines)


def add_parser(bench: Any) -> None:
    """Add `overhead` to the `bench` subcommand group."""
    p = bench.add_parser(
        "overhead", help="time the routing decision (profile, embedding, policies, scoring)",
        description="Time the routing decision for `auto` on the demo models plus a remote stand-in: "
        "the profile with the embedding, the policies, the memory lookup and the scoring, p50 and p99 "
        "over varied prompts after a warm-up; and the task classifier alone.")
    p.add_argument("--config", type=Path, help="TOML config file ([profile] and [router] sections)")
    p.add_argument("--prompts", type=int, default=PROMPTS, help=f"prompts measured (default {PROMPTS})")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from localforge import config
    from localforge.errors import LocalForgeError

    try:
        settings = config.load(args.config)
        timings = measure(settings, n=max(args.prompts, 1))
    except LocalForgeError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 2
    f = figures(timings)
    print(table(f))
    if args.json:
        args.json.write_text(json.dumps(f, indent=2))
    return 0

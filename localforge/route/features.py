"""The context vector the bandit learns over, built from a request's Profile.

It is the embedding (what the request is about) followed by a few facts about its shape that an
embedding of the meaning blurs: how long it is, how much arithmetic it carries, whether its answer
options are numbers, the task classifier's probabilities and the conversation features. Every
entry is scaled to roughly unit size so one penalty suits them all.
"""

from __future__ import annotations

import math
import re

import numpy as np

from localforge.config.router import TASKS
from localforge.profile.base import Profile

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_OPERATOR = re.compile(r"[=+*/^×÷]\s*\(?\d|\d\s*[=+*/^×÷%]")
_OPTION = re.compile(r"^\s*\(?[A-Ha-h][.)]\s+(.*)$", re.MULTILINE)
_NEGATION = re.compile(r"\b(not|except|least|false|incorrect)\b", re.IGNORECASE)
_CONVERSATION = ("turns", "code_blocks", "tools", "images")

SHAPE_DIMENSIONS = 11
EXTRA_DIMENSIONS = SHAPE_DIMENSIONS + len(TASKS) + len(_CONVERSATION) + 1


def shape(text: str) -> list[float]:
    options = _OPTION.findall(text)
    numeric = sum(1 for o in options if _NUMBER.search(o) and len(o) < 24)
    words = len(text.split())
    numbers = len(_NUMBER.findall(text))
    return [
        math.log1p(len(text)) / 8,
        math.log1p(words) / 6,
        math.log1p(numbers) / 3,
        numbers / max(words, 1) * 4,
        float(bool(_OPERATOR.search(text))),
        numeric / max(len(options), 1),
        float(not options),  # open question rather than multiple choice
        math.log1p(sum(len(o) for o in options) / max(len(options), 1)) / 5,
        min(text.count("?"), 4) / 4,
        float(bool(_NEGATION.search(text))),
        float("$" in text or "%" in text),
    ]


def context_vector(profile: Profile, dimensions: int) -> np.ndarray:
    """[embedding (dimensions), shape, task probabilities, conversation, bias], float64."""
    embedding = profile.embedding if profile.embedding is not None else np.zeros(dimensions)
    tasks = [profile.task_probabilities.get(t, 1.0 if t == profile.task else 0.0) for t in TASKS]
    conversation = [math.log1p(float(profile.features.get(k, 0) or 0)) for k in _CONVERSATION]
    extra = [*shape(profile.text), *tasks, *conversation, 1.0]
    return np.concatenate([np.asarray(embedding, dtype=np.float64).ravel()[:dimensions],
                           np.asarray(extra, dtype=np.float64)])

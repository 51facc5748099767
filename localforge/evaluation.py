"""What an evaluator is: an object that scores a sample of routed answers after they are sent.

An evaluator has `name`, `sample` (the share of routed answers it sees) and `async
evaluate(prompt, answer, pipeline) -> float | None`, and is registered through the
`register_evaluators` hook; the built-in one is the judge (route/judge.py). The pipeline lets it
ask a model served here (`Asker`), runs it in the background after the answer has been sent, so
it never slows a request down, and records its score (0..1) as an outcome of kind "judge" that
the router learns from.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Protocol

from localforge.errors import LocalForgeError
from localforge.inference import Event, Inference

log = logging.getLogger(__name__)


class Asked(Protocol):
    """An answer on its way, as an evaluator sees it (the pipeline's `Served`)."""

    @property
    def events(self) -> AsyncIterator[Event]: ...


class Asker(Protocol):
    """What an evaluator may do with the pipeline: ask a model served here."""

    async def run(self, request: Inference, endpoint: str) -> Asked: ...


class Evaluator(Protocol):
    name: str
    sample: float

    async def evaluate(self, prompt: str, answer: str, pipeline: Asker) -> float | None:
        """A score in 0..1 for the answer, or None when it cannot tell."""


def prompt_of(request: Inference) -> str:
    if request.kind == "generate":
        return request.prompt
    return next((m.content for m in reversed(request.messages) if m.role == "user"), "")


async def grade(evaluator: Evaluator, request: Inference, answer: str, pipeline: Asker) -> float | None:
    """Run one evaluator; its failures are logged, never raised (it runs after the answer)."""
    try:
        return await evaluator.evaluate(prompt_of(request), answer, pipeline)
    except LocalForgeError as exc:
        log.warning("evaluator %s failed: %s", evaluator.name, exc.message)
    except Exception:
        log.exception("evaluator %s failed", evaluator.name)
    return None

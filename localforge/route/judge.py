"""The judge: an evaluator that asks a local model to grade a sample of routed answers.

Off by default. Turned on by naming the model that judges in the config:

```toml
[judge]
model = "qwen2.5:7b"   # a local model; its grades never leave the machine
sample = 0.1           # the share of routed answers it grades
```

An evaluator is any object with `name`, `sample` and `async evaluate(prompt, answer, pipeline) ->
float | None` registered through the `register_evaluators` hook (the pipeline lets it ask a model
served here); the pipeline runs it in the background
after the answer has been sent, so it never slows a request down, and its score (0..1) is recorded
as an outcome of kind "judge" that the router learns from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from localforge import names
from localforge.config import Settings
from localforge.errors import BadRequest, LocalForgeError
from localforge.hookspecs import hookimpl
from localforge.inference import Delta, Inference, Message

if TYPE_CHECKING:
    from localforge.pipeline import Pipeline

log = logging.getLogger(__name__)

GRADE = {"type": "object", "properties": {"grade": {"type": "integer", "minimum": 1, "maximum": 10}},
         "required": ["grade"]}
INSTRUCTIONS = (
    "You grade answers. Read the question and the answer, then rate how correct and helpful the "
    "answer is from 1 (wrong or useless) to 10 (correct and complete). Reply with JSON: "
    '{"grade": <1-10>}.'
)


class Evaluator(Protocol):
    name: str
    sample: float

    async def evaluate(self, prompt: str, answer: str, pipeline: Pipeline) -> float | None:
        """A score in 0..1 for the answer, or None when it cannot tell."""


class Judge:
    name = "judge"

    def __init__(self, model: str, sample: float) -> None:
        self.model = model
        self.sample = sample

    def _request(self, prompt: str, answer: str) -> Inference:
        question = f"Question:\n{prompt[:4000]}\n\nAnswer:\n{answer[:4000]}"
        return Inference(model=self.model, kind="chat", system=INSTRUCTIONS, format=GRADE, stream=False,
                         messages=[Message(role="user", content=question)],
                         options={"temperature": 0, "num_predict": 16}, client="judge")

    async def evaluate(self, prompt: str, answer: str, pipeline: Pipeline) -> float | None:
        served = await pipeline.run(self._request(prompt, answer), "judge")
        text = "".join([e.text async for e in served.events if isinstance(e, Delta)])
        try:
            grade = int(json.loads(text)["grade"])
        except (ValueError, KeyError, TypeError):
            log.info("the judge %s gave no usable grade: %r", self.model, text[:80])
            return None
        return (min(max(grade, 1), 10) - 1) / 9


def settings_of(settings: Settings) -> tuple[str, float]:
    section = settings.section("judge")
    model, sample = str(section.get("model") or ""), section.get("sample", 0.1)
    if model:
        names.parse(model)
        if model.split(":")[0] == "auto":
            raise BadRequest("judge.model must name a model, not auto (the judge would judge itself)")
    if not isinstance(sample, int | float) or not 0 <= sample <= 1:
        raise BadRequest("judge.sample must be a number between 0 and 1")
    return model, float(sample)


@hookimpl
def register_evaluators(register: Callable[[Any], None], settings: Settings) -> None:
    """The built-in judge, when `[judge] model` is set."""
    model, sample = settings_of(settings)
    if model:
        register(Judge(model, sample))


def prompt_of(request: Inference) -> str:
    if request.kind == "generate":
        return request.prompt
    return next((m.content for m in reversed(request.messages) if m.role == "user"), "")


async def grade(evaluator: Evaluator, request: Inference, answer: str, pipeline: Pipeline) -> float | None:
    """Run one evaluator; its failures are logged, never raised (it runs after the answer)."""
    try:
        return await evaluator.evaluate(prompt_of(request), answer, pipeline)
    except LocalForgeError as exc:
        log.warning("evaluator %s failed: %s", evaluator.name, exc.message)
    except Exception:
        log.exception("evaluator %s failed", evaluator.name)
    return None

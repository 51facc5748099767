"""The judge: an evaluator that asks a local model to grade a sample of routed answers.

Off by default. Turned on by naming the model that judges in the config:

```toml
[judge]
model = "qwen2.5:7b"   # a local model; the prompts it reads and its grades never leave the machine
sample = 0.1           # the share of routed answers it grades
remote = false         # true: a remote model may judge, but never a prompt flagged sensitive
```

The judge's question quotes the prompt and the answer, so it is a private request (no remote
model serves it: `Pipeline._keep_private`) unless `remote = true`; even then, the question about
a prompt the sensitivity profiler flagged stays private (the pipeline hands the evaluators of
such a prompt a `PrivateAsker`), so a remote judge skips it.

The judge is one `Evaluator` (localforge/evaluation.py), registered through the
`register_evaluators` hook like any other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from localforge import names
from localforge.config import Settings
from localforge.errors import BadRequest, StaysLocal
from localforge.evaluation import Asker
from localforge.hookspecs import hookimpl
from localforge.inference import Delta, Inference, Message

log = logging.getLogger(__name__)

GRADE = {"type": "object", "properties": {"grade": {"type": "integer", "minimum": 1, "maximum": 10}},
         "required": ["grade"]}
INSTRUCTIONS = (
    "You grade answers. Read the question and the answer, then rate how correct and helpful the "
    "answer is from 1 (wrong or useless) to 10 (correct and complete). Reply with JSON: "
    '{"grade": <1-10>}.'
)


# the judge's prompt cache is its own: its questions quote every key's prompts
SCOPE = "judge"


class Judge:
    name = "judge"

    def __init__(self, model: str, sample: float, remote: bool = False) -> None:
        self.model = model
        self.sample = sample
        self.remote = remote

    def _request(self, prompt: str, answer: str) -> Inference:
        question = f"Question:\n{prompt[:4000]}\n\nAnswer:\n{answer[:4000]}"
        return Inference(model=self.model, kind="chat", system=INSTRUCTIONS, format=GRADE, stream=False,
                         messages=[Message(role="user", content=question)],
                         options={"temperature": 0, "num_predict": 16}, client="judge", scope=SCOPE,
                         private=not self.remote)

    async def evaluate(self, prompt: str, answer: str, pipeline: Asker) -> float | None:
        request = self._request(prompt, answer)
        try:
            served = await pipeline.run(request, "judge")
            text = "".join([e.text async for e in served.events if isinstance(e, Delta)])
        except StaysLocal as exc:
            if self.remote:  # opted in: only a prompt flagged sensitive is kept from it
                log.info("the judge did not grade a request: %s (the prompt was flagged sensitive)", exc.message)
            else:
                log.warning("the judge did not grade a request: %s; set `remote = true` in [judge] to let "
                            "a remote model grade the prompts not flagged sensitive", exc.message)
            return None
        try:
            grade = int(json.loads(text)["grade"])
        except (ValueError, KeyError, TypeError):
            # not the text itself: a judge may well repeat the question, which quotes the prompt
            log.info("the judge %s gave no usable grade (%d characters that are not {\"grade\": 1-10})",
                     self.model, len(text))
            return None
        return (min(max(grade, 1), 10) - 1) / 9


def settings_of(settings: Settings) -> tuple[str, float, bool]:
    section = settings.section("judge")
    unknown = sorted(set(section) - {"model", "sample", "remote"})
    if unknown:
        raise BadRequest(f"unknown judge setting(s): {', '.join(unknown)} (known: model, sample, remote)")
    model, sample, remote = str(section.get("model") or ""), section.get("sample", 0.1), section.get("remote", False)
    if model:
        names.parse(model)
        if model.split(":")[0] == "auto":
            raise BadRequest("judge.model must name a model, not auto (the judge would judge itself)")
    if not isinstance(sample, int | float) or not 0 <= sample <= 1:
        raise BadRequest("judge.sample must be a number between 0 and 1")
    if not isinstance(remote, bool):
        raise BadRequest("judge.remote must be true or false")
    return model, float(sample), remote


@hookimpl
def register_evaluators(register: Callable[[Any], None], settings: Settings) -> None:
    """The built-in judge, when `[judge] model` is set."""
    model, sample, remote = settings_of(settings)
    if model:
        register(Judge(model, sample, remote))

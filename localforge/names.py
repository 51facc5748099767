"""Model names as Ollama spells them: `[host/][namespace/]name[:tag]`, tag defaulting to `latest`.

A name is validated before it is used anywhere, so that a name can never become a file path
outside the models directory: every part must match `_PART` and `..` is never a part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from localforge.errors import BadRequest

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DEFAULT_TAG = "latest"


@dataclass(frozen=True, slots=True)
class ModelName:
    parts: tuple[str, ...]
    tag: str

    @property
    def base(self) -> str:
        return "/".join(self.parts)

    def __str__(self) -> str:
        return f"{self.base}:{self.tag}"


def parse(name: str) -> ModelName:
    """Parse and validate a model name; raise BadRequest naming the problem."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):  # a newline could forge a log line
        raise BadRequest(f"invalid model name {name[:200]!r}: it contains a control character")
    text = name.strip()
    if not text:
        raise BadRequest("model is required")
    base, tag = text, DEFAULT_TAG
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        base, tag = text.rsplit(":", 1)
    parts = tuple(base.split("/"))
    # fullmatch: `$` alone would let a trailing newline through
    if len(parts) > 4 or not all(_PART.fullmatch(p) and p not in (".", "..") for p in parts):
        raise BadRequest(f"invalid model name {name[:200]!r}")
    if not _TAG.fullmatch(tag) or ".." in tag:
        raise BadRequest(f"invalid model name {name[:200]!r}")
    return ModelName(parts=parts, tag=tag)


def canonical(name: str) -> str:
    """`llama3` -> `llama3:latest`; raises BadRequest for an invalid name."""
    return str(parse(name))


def is_valid(name: str) -> bool:
    try:
        parse(name)
    except BadRequest:
        return False
    return True

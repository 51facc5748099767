"""The shape of a conversation: how many turns, code blocks, tools and images it carries, what
format it wants its answer in, and how long its system prompt is.

These are facts a capability policy and the learned router read directly (a request with images
needs a vision model; one with tools needs a model that calls them) and that an embedding of the
last turn's meaning does not show.
"""

from __future__ import annotations

import re
from typing import Any

from localforge.inference import Inference
from localforge.profile.base import Profile
from localforge.profile.tokens import count

# a fenced block opens with ``` or ~~~ at the start of a line; a block is an opening and a closing
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)


def code_blocks(text: str) -> int:
    """Fenced code blocks in Markdown text; an unclosed last fence still counts as a block."""
    return (len(_FENCE.findall(text)) + 1) // 2


def requested_format(request: Inference) -> str:
    """"json" for `format: "json"`, "schema" for a JSON schema, "" when the answer is free text."""
    if isinstance(request.format, dict):
        return "schema"
    if isinstance(request.format, str) and request.format.strip():
        return request.format.strip().lower()
    return ""


def conversation_features(request: Inference) -> dict[str, Any]:
    texts = [m.content for m in request.messages] + [request.prompt, request.suffix]
    system = request.system or "\n".join(m.content for m in request.messages if m.role == "system")
    user_turns = sum(1 for m in request.messages if m.role == "user")
    return {
        "turns": user_turns if request.kind == "chat" else 1,
        "messages": len(request.messages) if request.kind == "chat" else 1,
        "code_blocks": sum(code_blocks(t) for t in texts if t),
        "format": requested_format(request),
        "tools": len(request.tools),
        "tool_results": sum(1 for m in request.messages if m.role == "tool"),
        "images": len(request.images) + sum(len(m.images) for m in request.messages),
        "system_tokens": count(system),
        "suffix": bool(request.suffix),  # fill-in-the-middle: a code completion
    }


class ConversationProfiler:
    name = "conversation"

    def profile(self, request: Inference, profile: Profile) -> None:
        profile.features.update(conversation_features(request))

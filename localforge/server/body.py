"""Reading request bodies into wire Structs, with errors that name the problem."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from litestar import Request

from localforge.errors import BadRequest, PayloadTooLarge

T = TypeVar("T")
_PATH = re.compile(r" - at `\$\.?([^`]*)`")


def _explain(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    m = _PATH.search(text)
    where = f" (field \"{m.group(1)}\")" if m and m.group(1) else ""
    return _PATH.sub("", text).replace("`", "") + where


async def read(request: Request, kind: type[T], max_bytes: int) -> T:
    """Decode the body as `kind`; a missing, malformed or oversized body is a 400/413."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    if not raw.strip():
        raise BadRequest("missing request body")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request: {_explain(exc)}") from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid JSON in request body: {exc}") from exc

"""Reading request bodies into wire Structs, with errors that name the problem."""

from __future__ import annotations

import re
from itertools import accumulate
from typing import TypeVar

import msgspec
from litestar import Request

from localforge.errors import BadRequest, PayloadTooLarge

T = TypeVar("T")
_PATH = re.compile(r" - at `\$\.?([^`]*)`")
# deeper JSON than this is refused before it is decoded: recursive code further on (schemas,
# templates, json.dumps) would otherwise hit Python's recursion limit
MAX_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting(raw: bytes) -> int:
    """How deeply the JSON document nests arrays and objects (strings are skipped)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return 0
    brackets = _STRING.sub(b"", raw).translate(None, _BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


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
    if nesting(raw) > MAX_DEPTH:
        raise BadRequest(f"invalid request: JSON is nested more than {MAX_DEPTH} levels deep")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request: {_explain(exc)}") from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid JSON in request body: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("invalid request: JSON is nested too deeply") from exc

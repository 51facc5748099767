"""Streamed lines split on "\\n" alone, however the bytes arrive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import msgspec

from localforge.lines import alines, escaped, lines

ANSWERS = [{"response": "one\u2028two"}, {"response": "\u2029"}, {"response": "é\x85ü"}, {"done": True}]


def body() -> bytes:
    return b"".join(msgspec.json.encode(a) + b"\r\n" for a in ANSWERS)


def test_lines_survive_any_chunking_and_the_separators_json_leaves_raw() -> None:
    raw = body()
    assert "\u2028".encode() in raw  # what the encoder writes: the separators unescaped
    for size in (1, 2, 3, 7, len(raw)):
        chunks = [raw[i:i + size] for i in range(0, len(raw), size)]  # cuts inside characters too
        assert [json.loads(line) for line in lines(chunks)] == ANSWERS


def test_the_last_line_needs_no_newline_and_the_async_reader_agrees() -> None:
    raw = body().rstrip(b"\r\n")

    async def arrive() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 5):
            yield raw[i:i + 5]

    async def read() -> list[str]:
        return [line async for line in alines(arrive())]

    assert [json.loads(line) for line in asyncio.run(read())] == ANSWERS


def test_escaped_json_keeps_its_meaning_and_splits_nowhere_but_newlines() -> None:
    for answer in ANSWERS:
        line = escaped(msgspec.json.encode(answer)).decode()
        assert not {"\u2028", "\u2029", "\x85"} & set(line)
        assert line.splitlines() == [line]  # httpx's iter_lines, and so the ollama package, see one line
        assert json.loads(line) == answer

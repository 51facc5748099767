"""Lines of a streamed answer (Ollama's NDJSON, OpenAI's server-sent events), split on "\\n" alone.

JSON leaves U+0085, U+2028 and U+2029 unescaped, and a model may well write them. httpx's
`iter_lines`, which the `ollama` package reads with, splits lines where `str.splitlines` does, on
those three too, and cuts a JSON line in two. So the server escapes them in what it streams
(`escaped`), and LocalForge reads every stream by "\\n" only (`lines`, `alines`).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

_SEPARATORS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def escaped(encoded: bytes) -> bytes:
    """Encoded JSON with the three separators written as escapes. Their UTF-8 bytes can only
    stand inside JSON strings (everything outside is ASCII), where the escape means the same."""
    if encoded.isascii():
        return encoded  # most tokens: one quick look, no copy
    for raw, escape in _SEPARATORS:
        encoded = encoded.replace(raw, escape)
    return encoded


class _Splitter:
    """Bytes in, whole lines out; a line ends at "\\n" (and sheds a "\\r" before it)."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        *whole, self.pending = (self.pending + chunk).split(b"\n")
        return [_text(line) for line in whole]

    def rest(self) -> list[str]:
        return [_text(self.pending)] if self.pending else []


def _text(line: bytes) -> str:
    return line.removesuffix(b"\r").decode("utf-8", "replace")


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    splitter = _Splitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.rest()


async def alines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    splitter = _Splitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.rest():
        yield line

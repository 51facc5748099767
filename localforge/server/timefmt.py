"""Timestamps as Ollama writes them: RFC 3339 with nanoseconds, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime

FOREVER_AT = "2318-01-01T00:00:00Z"  # where Ollama's "kept forever" expires_at lands


_second: tuple[int, str] = (-1, "")  # the last second formatted: a stream stamps many chunks in one


def now() -> str:
    global _second
    seconds, fraction = divmod(time.time_ns(), 1_000_000_000)
    if _second[0] != seconds:
        _second = (seconds, datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{fraction:09d}Z"


def iso(moment: datetime | None) -> str:
    if moment is None:
        return FOREVER_AT
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

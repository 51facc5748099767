"""Timestamps as Ollama writes them: RFC 3339 with nanoseconds, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime

FOREVER_AT = "2318-01-01T00:00:00Z"  # where Ollama's "kept forever" expires_at lands


def now() -> str:
    ns = time.time_ns()
    base = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns % 1_000_000_000:09d}Z"


def iso(moment: datetime | None) -> str:
    if moment is None:
        return FOREVER_AT
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

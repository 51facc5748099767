"""`keep_alive` values as Ollama reads them: a number of seconds, or a Go duration string."""

from __future__ import annotations

import math
import re

from localforge.errors import BadRequest

FOREVER = math.inf
# past this (about 290 years, where Go's time.Duration ends) a keep_alive is forever: a date that
# far out does not fit a datetime, and /api/ps must still be able to show it
LONGEST_S = 9.2e9
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Parse Go's time.ParseDuration syntax ("5m", "1h30m", "-1m") into seconds."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    if not body:
        raise BadRequest(f"time: invalid duration \"{text}\"")
    pos, total = 0, 0.0
    while pos < len(body):
        m = _TERM.match(body, pos)
        if not m:
            if re.fullmatch(r"[\d.]+", body[pos:]):
                raise BadRequest(f"time: missing unit in duration \"{text}\"")
            raise BadRequest(f"time: invalid duration \"{text}\"")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def keep_alive_seconds(value: object) -> float | None:
    """Seconds to keep a model loaded: None when absent, FOREVER when negative, 0 to unload."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest("keep_alive must be a number of seconds or a duration string like \"5m\"")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_go_duration(value)
    else:
        raise BadRequest("keep_alive must be a number of seconds or a duration string like \"5m\"")
    if math.isnan(seconds):
        raise BadRequest("keep_alive must be a number")
    return FOREVER if seconds < 0 or seconds > LONGEST_S else seconds

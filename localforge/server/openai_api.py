"""(being written)"""

from __future__ import annotations

ROUTES: list[object] = []

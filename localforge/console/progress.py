"""Pull and create progress as `ollama pull` draws it: a status line per step, a bar per layer.

    pulling manifest
    pulling 6a0746a1ec1a:  45% ▕███████         ▏ 2.1 GB/4.7 GB   98 MB/s     26s
    verifying sha256 digest

On a terminal the lines are redrawn in place; elsewhere (a pipe, a log) each line is written
once, a layer's when it is complete, so the output reads well in a file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from localforge.resources.budget import size

BAR_WIDTH = 25
REDRAW_EVERY_S = 0.1


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds}s"


@dataclass(slots=True)
class Layer:
    status: str
    total: int
    completed: int = 0
    first: int = 0  # what was there when this pull started (a resumed partial)
    started: float = field(default_factory=time.monotonic)
    written: bool = False

    def line(self, now: float) -> str:
        fraction = self.completed / self.total if self.total else 1.0
        filled = int(BAR_WIDTH * fraction)
        bar = f"▕{'█' * filled}{' ' * (BAR_WIDTH - filled)}▏"
        head = f"{self.status}: {int(fraction * 100):3d}% {bar} "
        if self.completed >= self.total:
            return head + size(self.total)
        elapsed = now - self.started
        rate = (self.completed - self.first) / elapsed if elapsed > 0 else 0.0
        left = duration((self.total - self.completed) / rate) if rate > 0 else "?"
        return head + f"{size(self.completed)}/{size(self.total)}  {size(rate)}/s  {left}"


class Progress:
    """Feed it each progress object of a pull or create; `close` when the stream ends."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.live = out.isatty()
        self.lines: list[str | Layer] = []
        self.layers: dict[str, Layer] = {}
        self.drawn = 0
        self.last = 0.0

    def update(self, item: dict[str, Any]) -> None:
        status = str(item.get("status", ""))
        digest, total = item.get("digest"), item.get("total")
        force = not digest
        if digest and total:
            layer = self.layers.get(digest)
            if layer is None:
                force = True
                completed = int(item.get("completed") or 0)
                layer = self.layers[digest] = Layer(status, int(total), completed, completed)
                self.lines.append(layer)
            layer.completed = int(item.get("completed") or 0)
        elif status and (not self.lines or self.lines[-1] != status):
            self.lines.append(status)
        self._draw(force)

    def close(self) -> None:
        self._draw(force=True, closing=True)

    def _draw(self, force: bool, closing: bool = False) -> None:
        now = time.monotonic()
        if self.live:
            if not force and now - self.last < REDRAW_EVERY_S:
                return
            self.last = now
            text = [line if isinstance(line, str) else line.line(now) for line in self.lines]
            up = f"\x1b[{self.drawn}F" if self.drawn else ""
            self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in text))
            self.drawn = len(text)
        else:
            for line in self.lines[self.drawn:]:
                if isinstance(line, Layer) and line.completed < line.total and not closing:
                    break
                self.out.write((line if isinstance(line, str) else line.line(now)) + "\n")
                self.drawn += 1
        self.out.flush()

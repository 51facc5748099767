"""One row per request: who asked for which model, who served it, and how long it took.

Rows never hold prompts, answers or secrets. Each row is committed on its own, so a crash loses
at most the request in flight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from localforge.inference import Final
from localforge.memory.db import Database


@dataclass(slots=True)
class RequestRecord:
    id: str
    endpoint: str
    requested_model: str
    served_model: str = ""
    backend: str = ""
    status: str = "ok"  # ok | error | canceled
    error: str = ""
    done_reason: str = ""
    prompt_tokens: int = 0
    eval_tokens: int = 0
    load_ns: int = 0
    prompt_ns: int = 0
    eval_ns: int = 0
    total_ns: int = 0
    client: str = ""
    created_at: str = ""

    def finish(self, final: Final) -> None:
        self.done_reason = final.done_reason
        self.prompt_tokens, self.eval_tokens = final.prompt_tokens, final.eval_tokens
        self.load_ns, self.prompt_ns, self.eval_ns = final.load_ns, final.prompt_ns, final.eval_ns


class Recorder:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _write(self, row: dict[str, Any]) -> None:
        with self.db.writing():
            self.db.table("requests").insert(row, replace=True)

    async def save(self, record: RequestRecord) -> dict[str, Any]:
        record.created_at = record.created_at or datetime.now(UTC).isoformat()
        row = asdict(record)
        await anyio.to_thread.run_sync(self._write, row)
        return row

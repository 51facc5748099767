"""One row per request: who asked for which model, who served it, and how long it took.

Rows never hold prompts, answers or secrets. Each row is committed on its own, so a crash loses
at most the request in flight. The read methods serve the dashboard; they are blocking sqlite
calls, for a worker thread.
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
    wait_ns: int = 0  # in the model's queue, before a slot was granted
    prompt_ns: int = 0
    eval_ns: int = 0
    total_ns: int = 0
    client: str = ""
    created_at: str = ""
    overflow: bool = False  # `auto` sent it remote because the local model's queue was too long

    def finish(self, final: Final) -> None:
        self.done_reason = final.done_reason
        # the whole prompt, whether evaluated or served by the prompt cache
        self.prompt_tokens, self.eval_tokens = final.prompt_tokens + final.cached_tokens, final.eval_tokens
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

    # reads
    def latest(self, limit: int = 100, model: str = "", status: str = "") -> list[dict[str, Any]]:
        """The newest requests first; `model` matches the model asked for or the one that served."""
        where, params = self._where(model=model, status=status)
        return [dict(row) for row in self.db.query(
            f"select * from requests {where} order by created_at desc limit ?", [*params, limit])]

    def find(self, request_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("select * from requests where id = ?", [request_id]))
        return dict(rows[0]) if rows else None

    def models(self) -> list[str]:
        """Every model asked for or served so far, for a filter."""
        return [row[0] for row in self.db.execute(
            "select requested_model from requests union select served_model from requests "
            "where served_model != '' order by 1")]

    def served_over_time(self, since: float, bucket_s: int,
                         asked: str = "") -> list[tuple[int, str, int, int]]:
        """(bucket start in unix seconds, served model, requests, of which overflowed) for
        requests answered since a time, in buckets of `bucket_s`; `asked` keeps only requests for
        models named like it."""
        where, params = self._where(since=since, status="ok", asked=asked)
        return [(int(start), model, int(n), int(over)) for start, model, n, over in self.db.execute(
            f"select unixepoch(created_at) / ? * ? as bucket, served_model, count(*), sum(overflow) "
            f"from requests {where} group by bucket, served_model order by bucket",
            [bucket_s, bucket_s, *params])]

    def errors_since(self, since: float) -> list[tuple[str, int, str]]:
        """(model, errors, the latest error's message) for requests that failed since a time."""
        where, params = self._where(since=since, status="error")
        return [(model, int(n), error) for model, n, error, _ in self.db.execute(
            f"select coalesce(nullif(served_model, ''), requested_model) as model, count(*), "
            f"error, max(created_at) from requests {where} group by model order by 2 desc", params)]

    @staticmethod
    def _where(model: str = "", status: str = "", since: float | None = None,
               asked: str = "") -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if model:
            clauses.append("(requested_model = ? or served_model = ?)")
            params += [model, model]
        if status:
            clauses.append("status = ?")
            params.append(status)
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(datetime.fromtimestamp(since, UTC).isoformat())
        if asked:
            clauses.append("(requested_model = ? or requested_model like ?)")
            params += [asked, f"{asked}:%"]
        return ("where " + " and ".join(clauses) if clauses else ""), params

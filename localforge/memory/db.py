"""The sqlite database in the data directory, opened in WAL mode, with append-only migrations.

Each migration is a function `m00N_verb_noun(db)`; the `_migrations` table records which ran.
Never edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]


class Database(sqlite_utils.Database):
    """sqlite-utils' database with the one lock every writer on its connection holds.

    A transaction belongs to the connection, not to the thread that began it: one writer's
    commit or rollback would end another's. The recorder and the routing memory write from
    worker threads, so each write is `with db.writing(): ...`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_lock = threading.RLock()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One transaction, committed on success and rolled back on error, under the lock."""
        with self.write_lock, self.conn:
            yield


def m001_create_requests(db: sqlite_utils.Database) -> None:
    db.table("requests").create({
        "id": str, "created_at": str, "endpoint": str, "requested_model": str,
        "served_model": str, "backend": str, "status": str, "error": str, "done_reason": str,
        "prompt_tokens": int, "eval_tokens": int, "load_ns": int, "prompt_ns": int,
        "eval_ns": int, "total_ns": int, "client": str,
    }, pk="id")
    db.table("requests").create_index(["created_at"])
    db.table("requests").create_index(["served_model"])


def m002_create_routes_and_outcomes(db: sqlite_utils.Database) -> None:
    # routes.id is the label of the request's vector in the hnswlib index, so it is an integer
    # key sqlite never renumbers; prompt is NULL when store_prompts is off (the hash stays)
    db.table("routes").create({
        "id": int, "request_id": str, "created_at": float, "preset": str, "chosen": str,
        "propensity": float, "explored": int, "reason": str, "candidates": str, "removed": str,
        "prompt_hash": str, "prompt": str, "tokens": int, "task": str, "sensitive": int,
        "profile": str, "embedding": bytes, "context": bytes,
    }, pk="id")
    db.table("routes").create_index(["request_id"], unique=True)
    db.table("routes").create_index(["prompt_hash", "created_at"])
    db.table("outcomes").create({
        "id": int, "route_id": int, "model": str, "score": float, "kind": str, "created_at": float,
    }, pk="id", foreign_keys=[("route_id", "routes", "id")])
    db.table("outcomes").create_index(["route_id"])


def m003_add_request_wait(db: sqlite_utils.Database) -> None:
    # the time a request waited in its model's queue, for the dashboard's request list
    db.table("requests").add_column("wait_ns", int, not_null_default=0)


def m004_add_route_scope(db: sqlite_utils.Database) -> None:
    # whose request it was (a hash of its API key, "" without keys): the memory answers a key
    # only with its own routes, so no response tells one key what another asked
    db.table("routes").add_column("scope", str, not_null_default="")


def m005_add_request_overflow(db: sqlite_utils.Database) -> None:
    # 1 where `auto` sent the request to a remote model because the local queue was too long
    db.table("requests").add_column("overflow", int, not_null_default=0)


MIGRATIONS: list[Migration] = [m001_create_requests, m002_create_routes_and_outcomes, m003_add_request_wait,
                               m004_add_route_scope, m005_add_request_overflow]


def migrate(db: sqlite_utils.Database, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations that have not run yet; return their names."""
    table = db.table("_migrations")
    if not table.exists():
        db.table("_migrations").create({"name": str, "applied_at": str}, pk="name")
    done = {row["name"] for row in db.table("_migrations").rows}
    applied = []
    for migration in migrations or MIGRATIONS:
        if migration.__name__ in done:
            continue
        with db.conn:
            migration(db)
            db.table("_migrations").insert({"name": migration.__name__,
                                      "applied_at": datetime.now(UTC).isoformat()})
        applied.append(migration.__name__)
    return applied


def open_db(path: Path) -> Database:
    path.parent.mkdir(parents=True, exist_ok=True)
    # shared by the recorder and the routing memory, whose worker threads take `writing()`
    db = Database(sqlite3.connect(path, check_same_thread=False))
    db.conn.execute("PRAGMA journal_mode=WAL")
    db.conn.execute("PRAGMA synchronous=NORMAL")
    db.conn.execute("PRAGMA busy_timeout=5000")
    migrate(db)
    return db

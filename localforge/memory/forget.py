"""`localforge forget`: wipe routed requests, their outcomes and their vectors from a data folder.

The server must not be running on the folder (its lock says so): it keeps the same rows in memory
and would write its index back at shutdown. What is derived from the rows (the vector index, the
bandit's state) is deleted and rebuilt from what is left at the next start.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from localforge.data_folder import DataFolderBusy, lock_data_folder
from localforge.memory.db import open_db
from localforge.memory.outcomes import delete_routes

# rebuilt from sqlite when missing: the hnswlib index, its sidecar, the bandit's saved state
DERIVED = ("routes.hnsw", "routes.json", "bandit.npz")


def forget(data_dir: Path, before: datetime | None) -> int:
    """Delete the routes created before a time (all: None); returns how many went."""
    db = open_db(data_dir / "localforge.db")
    try:
        with db.writing():
            gone = delete_routes(db, before.timestamp() if before is not None else None)
        db.conn.execute("VACUUM")  # no page of the file keeps a deleted prompt
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.conn.close()
    for name in DERIVED:
        (data_dir / name).unlink(missing_ok=True)
    return len(gone)


def date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD or an ISO time)") from exc


def run(data_dir: Path, before: datetime | None) -> int:
    if not (data_dir / "localforge.db").exists():
        print(f"nothing to forget: no database in {data_dir}")
        return 0
    try:
        lock = lock_data_folder(data_dir, "localforge forget")
    except DataFolderBusy as exc:
        print(f"Error: {exc}; stop it first", file=sys.stderr)
        return 1
    with lock:
        gone = forget(data_dir, before)
    since = "" if before is None else f" from before {before.isoformat(sep=' ')}"
    print(f"forgot {gone} routed request{'s' if gone != 1 else ''}{since}, their outcomes and vectors")
    return 0

"""The data folder's lock: one process at a time writes its database and vector index.

`localforge serve` holds it for the life of the server; `localforge forget` takes it for the
time it deletes, and refuses while a server holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

LOCK_NAME = "localforge.lock"


class DataFolderBusy(Exception):
    """Another live process holds the data folder; the message says who."""


def lock_data_folder(data_dir: Path, holder: str) -> IO[str]:
    """Hold the folder's lock file until the process ends; DataFolderBusy when another does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    handle = open(path, "a+")  # noqa: SIM115 - held open for the life of the process
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one instance per folder is on the user
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.seek(0)
        who = handle.read().strip() or "another process"
        handle.close()
        raise DataFolderBusy(f"the data folder {data_dir} is in use by {who}") from exc
    handle.seek(0)
    handle.truncate()
    handle.write(holder)
    handle.flush()
    return handle

"""`localforge serve`: take the port, then the data folder, and only then build anything.

The port is bound (and listening) before the app is built, so a port already in use fails at
once, before a second instance has read or rebuilt anything. The data folder is locked for the
life of the process, so two instances never write the same database and vector index.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import sys

from localforge import __version__
from localforge.config import Settings
from localforge.data_folder import DataFolderBusy, lock_data_folder

log = logging.getLogger(__name__)

class QuietShutdown(logging.Filter):
    """A request cut off because the server is stopping is expected, not a crash: one line
    instead of uvicorn's sixty lines of ASGI traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Cancel ") and "graceful shutdown" in record.getMessage():
            record.msg, record.args = "stopping: requests still in flight were cancelled", ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, as uvicorn would make it; OSError when it is taken."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # listening at once: a second bind on Linux fails only against a listener
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def describe_bind_error(host: str, port: int, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    hint = (" (is LocalForge or Ollama already running there? choose another with --port)"
            if exc.errno == errno.EADDRINUSE else "")
    return f"cannot listen on {host}:{port}: {reason.lower()}{hint}"


def run(settings: Settings, log_level: str) -> int:
    import uvicorn

    from localforge.server.app import create_app
    from localforge.server.connections import timed_protocol

    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        print(f"Error: {describe_bind_error(settings.host, settings.port, exc)}", file=sys.stderr)
        return 1
    url = f"http://{settings.host}:{settings.port}"
    try:
        lock = lock_data_folder(settings.data_dir, f"LocalForge (pid {os.getpid()}) at {url}")
    except DataFolderBusy as exc:
        sock.close()
        print(f"Error: {exc}; stop it, or give this one its own --data-dir", file=sys.stderr)
        return 1
    except OSError as exc:
        sock.close()
        print(f"Error: cannot use the data folder {settings.data_dir}: {exc}", file=sys.stderr)
        return 1
    print(f"LocalForge {__version__} listening on {url} "
          f"(models: {settings.models_path}, data: {settings.data_dir})", flush=True)
    config = uvicorn.Config(create_app(settings), log_level=log_level, timeout_graceful_shutdown=5,
                            http=timed_protocol())  # idle connections time out
    logging.getLogger("uvicorn.error").addFilter(QuietShutdown())  # after Config set up its loggers
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        lock.close()
    return 0

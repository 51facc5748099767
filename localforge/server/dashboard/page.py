"""GET /ui: the dashboard's page, and its script and style under /ui/static.

The page is a static shell, open to anyone who can reach the port like `GET /`: it holds no data.
Everything it shows comes from /ui/api, which needs the key when `api_keys` is set; the page asks
for the key once and keeps it in the browser's storage. No asset comes from anywhere else, so the
page works offline.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.handlers import HTTPRouteHandler
from litestar.response import File
from litestar.static_files import create_static_files_router

from localforge.server.auth import PUBLIC

STATIC = Path(__file__).parent / "static"
# the page polls; a stale script after an upgrade would read a JSON shape that changed
NO_CACHE = CacheControlHeader(no_cache=True)


@get(["/ui", "/ui/"], opt=PUBLIC, sync_to_thread=False, cache_control=NO_CACHE)
def page() -> File:
    return File(STATIC / "index.html", content_disposition_type="inline", media_type="text/html; charset=utf-8")


ASSETS = create_static_files_router(path="/ui/static", directories=[STATIC], opt=PUBLIC, cache_control=NO_CACHE)
ROUTES: list[HTTPRouteHandler | Router] = [page, ASSETS]

"""kextlog's plugin for Datasette: its pages (pages.py) as routes of the
Datasette that serves them (server.build registers the site here)."""

from __future__ import annotations

from typing import Any

from datasette import hookimpl

from . import pages

# Each Datasette this process made, by id, with the site it serves.
SITES: dict[int, pages.Site] = {}


@hookimpl
def register_routes(datasette: Any) -> list[tuple[str, Any]]:
    site = SITES.get(id(datasette))
    return pages.routes(site) if site is not None else []

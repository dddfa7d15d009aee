"""kextlog's plugin for Datasette: its pages (logpage.py, record.py,
reports.py, on pages.py's machinery) as routes of the Datasette that
serves them (server.build registers the site here)."""

from __future__ import annotations

from typing import Any

from datasette import hookimpl
from datasette.utils.asgi import Base400, Request, Response
from datasette.views.base import DatasetteError

from .logpage import chart, export, facets, live, log_page
from .pages import Site, error, log, page
from .record import record_page
from .reports import canned_page, sql_page, stats_page, views_page

# Each Datasette this process made, by id, with the site it serves.
SITES: dict[int, Site] = {}


@hookimpl
def register_routes(datasette: Any) -> list[tuple[str, Any]]:
    site = SITES.get(id(datasette))
    return routes(site) if site is not None else []


@hookimpl
def handle_exception(datasette: Any, request: Request, exception: Exception) -> Any:
    """What reaches Datasette's own handling (a path no page has, a
    request Datasette refuses): one line in kextlog's error page, 4xx as
    Datasette says, 500 otherwise with the traceback in the server's log.
    It stands in for Datasette's default, which printed every one with rich,
    and failed itself on a not-found that was never raised."""
    site = SITES.get(id(datasette))
    if site is None:
        return None

    async def respond() -> Response:
        if isinstance(exception, Base400):
            return await error(site, request, str(exception.args[0]), exception.status)
        if isinstance(exception, DatasetteError) and exception.status < 500:
            return await error(site, request, str(exception.message), exception.status)
        log.error("kextlog web: %s", request.path, exc_info=exception)
        return await error(site, request, "internal error: see kextlog web's log", 500)

    return respond


def routes(site: Site) -> list[tuple[str, Any]]:
    """The pages, as Datasette's register_routes hook gives them."""

    async def live_view(request: Request, send: Any, receive: Any) -> Response | None:
        return await live(site, request, send, receive)

    return [
        (r"^/$", page(site, log_page)),
        (r"^/log\.(?P<format>json|csv)$", page(site, export)),
        (r"^/-/kextlog/facets\.json$", page(site, facets)),
        (r"^/-/kextlog/chart\.json$", page(site, chart)),
        (r"^/-/kextlog/live$", live_view),
        (
            r"^/record/(?P<instance>[^/]+)/(?P<seq>[^/.]+)(\.(?P<format>json))?$",
            page(site, record_page),
        ),
        (r"^/stats(\.(?P<format>json))?$", page(site, stats_page)),
        (r"^/views$", page(site, views_page)),
        (r"^/views/(?P<name>[^/]+)$", page(site, canned_page)),
        (r"^/sql(\.(?P<format>json|csv))?$", page(site, sql_page)),
    ]

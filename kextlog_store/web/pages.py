"""What every page of `kextlog web` is built on: the site, reads on a
worker thread under a time limit, one-line errors, templates, and entries
as the log shows them.  The pages themselves: logpage.py (the log, its
exports, facets, chart and live records), record.py (a record and its
neighbours), reports.py (stats, canned views, SQL); plugin.py routes them.

Every read runs on a worker thread under a time limit, through the read
path of `kextlog query`, `kextlog stats` and `kextlog sql` (library.py);
every parameter is checked (params.py) and every failure is one line in
the page with HTTP 400, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from datasette.utils.asgi import Request, Response

from . import jsontext, library
from .library import Cursor, DatabaseError, Entry, KextlogError, Level, Loss, Reader
from .params import View

log = logging.getLogger("kextlog.web")
T = TypeVar("T")

# Time limits (seconds): of each page's reads, unless `kextlog web --timeout`
# says otherwise (the facets give up sooner: logpage.py); SQL has kextlog
# sql's default limit.
READ_SECONDS = 30.0
SQL_SECONDS = 10.0
SQL_MAX_ROWS = 10_000  # kextlog sql's default --max-rows
MAX_LIVE = 16  # live streams at once (a thread each)

# Most severe first, as the log reads; the chart stacks them the other way.
LEVELS = sorted(Level, reverse=True)


class Site:
    """What the pages serve: the store (its URL) and the Datasette that
    serves them."""

    def __init__(
        self, url: str, datasette: Any, table_browser: str, timeout: float = READ_SECONDS
    ) -> None:
        self.url = url
        self.timeout = timeout  # of each page's reads
        self.datasette = datasette
        self.table_browser = table_browser  # Datasette's page of the store's tables
        self.live = threading.BoundedSemaphore(MAX_LIVE)
        self.stopping: asyncio.Event | None = None  # set when the server stops (serve())


# --- running reads, reporting failures ----------------------------------------


async def read(site: Site, seconds: float, work: Callable[[Reader], T]) -> T:
    """work(reader) on a worker thread, its reads stopped after `seconds`.
    The reader is the thread's own, disposed of afterwards: a SQLite
    connection never serves two threads."""

    def limited() -> T:
        with library.time_limit(seconds), library.reading(site.url) as store:
            try:
                return work(store)
            except DatabaseError:
                if library.timed_out():
                    raise DatabaseError(
                        f"reading took longer than {seconds:g} s: narrow the filters "
                        "(a shorter since/until, a level, an instance)"
                    ) from None
                raise

    return await asyncio.to_thread(limited)


def pairs(request: Request) -> list[tuple[str, str]]:
    """The query string's parameters, in order (decoding errors replaced)."""
    return parse_qsl(request.query_string, keep_blank_values=True)


Handler = Callable[..., Awaitable[Response]]
Route = Callable[[Request], Awaitable[Response]]

# Every page of kextlog's own: no script but its files, no frames.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def page(site: Site, handler: Handler) -> Route:
    """A route of handler(site, request, **the path's parts), whose failures
    are one line in the error page: HTTP 400 for what the request asked (a
    bad parameter, a read over its time limit), 500 for anything else, with
    the traceback in the server's log only."""

    async def view(request: Request) -> Response:
        try:
            response = await handler(site, request, **request.url_vars)
        except KextlogError as exc:
            response = await error(site, request, str(exc), 400)
        except Exception:
            log.exception("kextlog web: %s", request.path)
            response = await error(site, request, "internal error: see kextlog web's log", 500)
        response.headers.setdefault("content-security-policy", POLICY)
        return response

    return view


async def error(site: Site, request: Request, message: str, status: int) -> Response:
    message = " ".join(message.split())
    if wants_json(request):
        return json_response({"ok": False, "error": message}, status=status)
    body = await site.datasette.render_template(
        "kextlog_error.html",
        {"message": message, "status": status, "tables_href": site.table_browser},
        request=request,
    )
    return Response.html(body, status=status)


def wants_json(request: Request) -> bool:
    return request.path.endswith((".json", "/live"))


def json_response(value: Any, status: int = 200) -> Response:
    return Response(
        jsontext.dumps(value), status=status, content_type="application/json; charset=utf-8"
    )


async def render(site: Site, request: Request, template: str, **context: Any) -> Response:
    body = await site.datasette.render_template(
        template, {"tables_href": site.table_browser, **context}, request=request
    )
    return Response.html(body)


# --- entries as the pages show them --------------------------------------------


def shown(entry: Entry, utc: bool) -> dict[str, Any]:
    """An entry as a row of the log: a record's fields, or a loss marker in
    the words `kextlog query` prints it."""
    time = library.iso_time(entry.time_ns, library.zone(utc))
    if isinstance(entry, Loss):
        return {
            "kind": "loss",
            "text": library.loss_short(entry),
            "time": time,
            "time_ns": str(entry.time_ns),
            "loss": f"{entry.instance}:{entry.first_seq}",  # a loss's key
        }
    return {
        "kind": "record",
        "time": time,
        "time_ns": str(entry.time_ns),
        "level": entry.level.label,
        "pid": entry.pid,
        "tid": str(entry.tid),
        "process": entry.process,
        "message": entry.message.rstrip("\n"),
        "seq": entry.seq,
        "instance": entry.instance,
        "source": entry.source,
        "href": f"/record/{entry.instance}/{entry.seq}" + ("?utc=1" if utc else ""),
        "cursor": str(Cursor.of(entry)),
    }


def newest_first(store: Reader, view: View) -> list[Entry]:
    """The last view.lines records of the view, newest first, with the
    losses among them, as `kextlog query -n N -r` shows them."""
    wanted = replace(view.record_filter, lines=view.lines, reverse=True)
    with closing(library.entries(store, wanted)) as found:
        return list(found)


def epoch(time_ns: int) -> str:
    """A time spec of that very nanosecond: @SECONDS.NANOSECONDS."""
    seconds, nanos = divmod(time_ns, library.NS_PER_SECOND)
    return f"@{seconds}.{nanos:09d}"

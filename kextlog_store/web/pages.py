"""The pages of `kextlog web`, as Datasette routes (plugin.py registers
them): the log, a record with its neighbours, the rate chart and facets
(JSON the log page's script fetches), live records (Server-Sent Events),
the stats, canned views and read-only SQL.

Every read runs on a worker thread under a time limit, through the read
path of `kextlog query`, `kextlog stats` and `kextlog sql` (library.py);
every parameter is checked (params.py) and every failure is one line in
the page with HTTP 400, never a traceback.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from contextlib import closing, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote

from datasette.utils.asgi import Request, Response

from . import jsontext, library, params
from .library import (
    Cursor,
    DatabaseError,
    Entry,
    KextlogError,
    Level,
    Loss,
    Record,
    RecordFilter,
    RecordFormat,
    SqlFormat,
    UsageError,
)
from .params import View

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("kextlog.web")
T = TypeVar("T")

# Time limits (seconds): of each page's reads, unless `kextlog web --timeout`
# says otherwise; the facets are extras and give up sooner; SQL has kextlog
# sql's default limit.
READ_SECONDS = 30.0
FACET_SECONDS = 3.0
SQL_SECONDS = 10.0
SQL_MAX_ROWS = 10_000  # kextlog sql's default --max-rows
SQL_MAX_LENGTH = 8_000  # characters of a statement (it travels in the URL)
CHART_BUCKETS = 60
FACET_VALUES = 15
NEIGHBOURS = 10  # the same instance's records, seqs on each side
MAX_NEIGHBOURS = 1_000
CONTEXT_NS = 60 * library.NS_PER_SECOND  # every source's records, each side
CONTEXT_RECORDS = 25  # ... at most, on each side
MAX_LIVE = 16  # live streams at once (a thread each)
LIVE_KEEPALIVE_S = 15.0
_INSTANCE = re.compile(r"[0-9a-f]{32}")
_SEQ_LIMIT = 2**44 - 1

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


async def read(site: Site, seconds: float, work: Callable[[Engine], T]) -> T:
    """work(engine) on a worker thread, its reads stopped after `seconds`.
    The engine is the thread's own, disposed of afterwards: a SQLite
    connection never serves two threads."""

    def limited() -> T:
        with library.time_limit(seconds), library.reading(site.url) as engine:
            try:
                return work(engine)
            except (DatabaseError, library.DriverError) as exc:
                if library.timed_out():
                    raise DatabaseError(
                        f"reading took longer than {seconds:g} s: narrow the filters "
                        "(a shorter since/until, a level, an instance)"
                    ) from None
                if isinstance(exc, DatabaseError):
                    raise
                raise library.database_error(exc) from None

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


def newest_first(engine: Engine, view: View) -> list[Entry]:
    """The last view.lines records of the view, newest first, with the
    losses among them, as `kextlog query -n N -r` shows them."""
    wanted = replace(view.record_filter, lines=view.lines, reverse=True)
    with closing(library.entries(engine, wanted)) as found:
        return list(found)


# --- the log ---------------------------------------------------------------------


async def log_page(site: Site, request: Request) -> Response:
    view = View.parse(pairs(request))
    found = await read(site, site.timeout, lambda engine: newest_first(engine, view))
    rows = [shown(entry, view.utc) for entry in found]
    newest = next((row for row in rows if row["kind"] == "record"), None)
    oldest = next((row for row in reversed(rows) if row["kind"] == "record"), None)
    older = None
    if oldest is not None and sum(row["kind"] == "record" for row in rows) >= view.lines:
        # Until the oldest shown, included: records of that very nanosecond
        # show on both pages rather than on neither.
        older = view.link(until=[_epoch(int(oldest["time_ns"]))])
    data = {
        "query": view.query_string(),
        "live": view.record_filter.until_ns is None,
        "after": newest["cursor"] if newest else None,
        "utc": view.utc,
        "lines": view.lines,
    }
    return await render(
        site,
        request,
        "kextlog_log.html",
        view=view,
        rows=rows,
        levels=[level.label for level in LEVELS],
        older=older,
        data=jsontext.script_json(data),
        json_href=view.link("/log.json"),
        csv_href=view.link("/log.csv"),
        command=view.command(),
        permalink=view.link(),
    )


def _epoch(time_ns: int) -> str:
    """A time spec of that very nanosecond: @SECONDS.NANOSECONDS."""
    seconds, nanos = divmod(time_ns, library.NS_PER_SECOND)
    return f"@{seconds}.{nanos:09d}"


async def export(site: Site, request: Request, format: str) -> Response:
    """The view's records as `kextlog query -n N -o json|csv` prints them."""
    view = View.parse(pairs(request))
    output = RecordFormat(format)

    def written(engine: Engine) -> str:
        out = io.StringIO()
        wanted = replace(view.record_filter, lines=view.lines)
        with closing(library.entries(engine, wanted)) as found:
            library.write_records(found, output, out, utc=view.utc)
        return out.getvalue()

    body = await read(site, site.timeout, written)
    kind = "application/x-ndjson" if output is RecordFormat.JSON else "text/csv"
    return Response(body, content_type=f"{kind}; charset=utf-8")


async def facets(site: Site, request: Request) -> Response:
    """Counts of the view's records by level, process, instance and host,
    counted at the same time, each under its own time limit (one that takes
    too long says so)."""
    view = View.parse(pairs(request))
    seconds = min(FACET_SECONDS, site.timeout)

    def counted(engine: Engine, column: str, limit: int | None = None) -> list[tuple[Any, int]]:
        from sqlalchemy import func, select

        with engine.connect() as connection:
            records = library.filtered(connection, view.record_filter).subquery()
            statement = (
                select(records.c[column], func.count())
                .group_by(records.c[column])
                .order_by(func.count().desc(), records.c[column])
                .limit(limit)
            )
            return [(value, int(count)) for value, count in connection.execute(statement)]

    def values(found: list[tuple[Any, int]], name: str, spelled: Callable[[Any], str]):  # type: ignore[no-untyped-def]
        return [{"value": value, "count": count, "href": view.link(**{name: [spelled(value)]})}
                for value, count in found]  # fmt: skip

    def by_level(engine: Engine) -> dict[str, Any]:
        counts = dict(counted(engine, "level"))
        levels = [(level.label, counts[level]) for level in LEVELS if level in counts]
        return {"level": values(levels, "level", lambda name: f"{name}..{name}")}

    def by_process(engine: Engine) -> dict[str, Any]:
        found = counted(engine, "process", FACET_VALUES)
        return {"process": values(found, "process", params.exact_glob)}

    def by_instance(engine: Engine) -> dict[str, Any]:
        counts = counted(engine, "instance")
        with engine.connect() as connection:
            hosts = library.instance_hosts(connection)
        totals: dict[str, int] = {}
        for uuid, count in counts:
            totals[hosts.get(uuid, "")] = totals.get(hosts.get(uuid, ""), 0) + count
        by_host = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
        return {"instance": values(counts[:FACET_VALUES], "instance", str),
                "host": values(by_host, "host", str)}  # fmt: skip

    async def facet(count: Callable[[Engine], dict[str, Any]], *names: str) -> dict[str, Any]:
        try:
            found = await read(site, seconds, count)
        except KextlogError as exc:
            return {name: {"error": str(exc)} for name in names}
        return {name: {"values": found[name]} for name in names}

    counts = await asyncio.gather(
        facet(by_level, "level"), facet(by_process, "process"),
        facet(by_instance, "instance", "host"),
    )  # fmt: skip
    found = {name: facet for each in counts for name, facet in each.items()}
    return json_response(
        {"ok": True, "facets": [{"name": name, **facet} for name, facet in found.items()]}
    )


def chart_data(engine: Engine, record_filter: RecordFilter, utc: bool) -> dict[str, Any]:
    """Records per bucket of the filter's range, per level (the levels
    present), and the records lost per bucket: the rate chart."""
    from sqlalchemy import func, select

    with engine.connect() as connection:
        records = library.filtered(connection, record_filter).subquery()
        start, end = record_filter.since_ns, record_filter.until_ns
        if start is None or end is None:
            first, last = connection.execute(
                select(func.min(records.c.time_ns), func.max(records.c.time_ns))
            ).one()
            if first is None:
                return {"labels": [], "series": [], "lost": [], "bucket_seconds": None}
            start = first if start is None else start
            end = last if end is None else end
        size = library.choose_bucket(end - start, CHART_BUCKETS)
        origin = library.bucket_start(start, size, utc)
        index = (records.c.time_ns - origin) // size
        counts: dict[int, dict[int, int]] = {}
        for number, level, count in connection.execute(
            select(index, records.c.level, func.count()).group_by(index, records.c.level)
        ):
            counts.setdefault(int(level), {})[int(number)] = int(count)
        buckets = (end - origin) // size + 1
        lost = [0] * buckets
        for loss in library.losses_of(connection, record_filter):
            lost[min(max((loss.time_ns - origin) // size, 0), buckets - 1)] += loss.count
    tz = library.zone(utc)
    return {
        "bucket_seconds": size / library.NS_PER_SECOND,
        "labels": [library.iso_time(origin + i * size, tz)[:19] for i in range(buckets)],
        "series": [
            {"level": level.label, "counts": [counts[int(level)].get(i, 0) for i in range(buckets)]}
            for level in sorted(Level)
            if int(level) in counts
        ],
        "lost": lost,
    }


async def chart(site: Site, request: Request) -> Response:
    view = View.parse(pairs(request))
    data = await read(
        site, site.timeout, lambda engine: chart_data(engine, view.record_filter, view.utc)
    )
    return json_response({"ok": True, **data})


# --- live: new records as they are committed -------------------------------------


async def live(site: Site, request: Request, send: Any, receive: Any) -> Response | None:
    """Server-Sent Events: each record (and loss) of the view committed
    after the cursor `after` (or the event stream's Last-Event-ID), as the
    read path's follow() finds them, one event each."""
    try:
        view = View.parse([pair for pair in pairs(request) if pair[0] != "after"])
        after = request.headers.get("last-event-id") or dict(pairs(request)).get("after")
        cursor = Cursor.parse(after) if after else None
        if view.record_filter.until_ns is not None:
            raise UsageError("live: a view with until shows no new records")
        wanted = replace(view.record_filter, after_cursor=cursor, lines=None if cursor else 0)
    except KextlogError as exc:
        return Response.json({"ok": False, "error": str(exc)}, status=400)
    if not site.live.acquire(blocking=False):
        return Response.json(
            {"ok": False, "error": f"{MAX_LIVE} live views are open: close one"}, status=503
        )
    try:
        await _stream(site, wanted, view.utc, send, receive)
    finally:
        site.live.release()
    return None


async def _stream(site: Site, wanted: RecordFilter, utc: bool, send: Any, receive: Any) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=10_000)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        # From the reader's thread: it waits while the browser is slow, and
        # gives up once the stream has ended.
        sent = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop.is_set():
            with suppress(TimeoutError):
                sent.result(timeout=0.5)
                return
        sent.cancel()

    def follow() -> None:
        try:
            with (
                library.reading(site.url) as engine,
                closing(library.follow(engine, wanted, stop=stop)) as found,
            ):
                for entry in found:
                    if stop.is_set():
                        return
                    put(("entry", entry))
        except KextlogError as exc:
            if not stop.is_set():
                put(("error", str(exc)))
        except Exception:
            log.exception("kextlog web: live")
            if not stop.is_set():
                put(("error", "internal error: see kextlog web's log"))

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
    reader = threading.Thread(target=follow, name="kextlog-web-live", daemon=True)
    reader.start()
    gone = asyncio.ensure_future(disconnected())
    stopping = asyncio.ensure_future(site.stopping.wait()) if site.stopping else gone
    try:
        while not gone.done() and not stopping.done():
            getting = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getting, gone, stopping},
                timeout=LIVE_KEEPALIVE_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getting not in done:
                getting.cancel()
                if not gone.done() and not stopping.done():
                    await send({"type": "http.response.body", "body": b": idle\n\n",
                                "more_body": True})  # fmt: skip
                continue
            kind, value = getting.result()
            await send({"type": "http.response.body", "body": _event(kind, value, utc),
                        "more_body": True})  # fmt: skip
            if kind == "error":
                break
    finally:
        stop.set()
        gone.cancel()
        stopping.cancel()
        while not queue.empty():  # a reader waiting to put gets its turn and sees stop
            queue.get_nowait()
        with suppress(Exception):  # the browser may have gone
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _event(kind: str, value: Any, utc: bool) -> bytes:
    if kind == "error":
        return f"event: failure\ndata: {jsontext.dumps({'error': value})}\n\n".encode()
    row = shown(value, utc)
    event_id = f"id: {row['cursor']}\n" if isinstance(value, Record) else ""
    return f"{event_id}data: {jsontext.dumps(row)}\n\n".encode()


# --- a record -------------------------------------------------------------------


def _record_key(instance: str, seq: str) -> tuple[str, int]:
    if not _INSTANCE.fullmatch(instance):
        raise UsageError(f"instance: {instance[:40]!r} is not an instance id (32 hex digits)")
    return instance, params.integer("seq", seq, 0, _SEQ_LIMIT)


def around(engine: Engine, record: Record) -> tuple[list[Entry], list[Entry], bool, bool]:
    """Every source's entries within CONTEXT_NS of the record, at most
    CONTEXT_RECORDS records on each side, nearest kept: (before, after,
    whether more were before, after)."""
    t = record.time_ns
    plain = RecordFilter()
    before_filter = replace(plain, since_ns=t - CONTEXT_NS, until_ns=t - 1, lines=CONTEXT_RECORDS)
    with closing(library.entries(engine, before_filter)) as found:
        before = list(found)
    # The same nanosecond: what comes before the record in logged order.
    with closing(library.entries(engine, replace(plain, since_ns=t, until_ns=t))) as found:
        for entry in found:
            if isinstance(entry, Record) and (entry.instance, entry.seq) == (
                record.instance,
                record.seq,
            ):
                break
            before.append(entry)
    more_before = sum(isinstance(entry, Record) for entry in before) > CONTEXT_RECORDS
    while sum(isinstance(entry, Record) for entry in before) > CONTEXT_RECORDS:
        before.pop(0)
    after_filter = replace(plain, cursor=Cursor.of(record), until_ns=t + CONTEXT_NS)
    after: list[Entry] = []
    more_after = False
    with closing(library.entries(engine, after_filter)) as found:
        for entry in found:
            if isinstance(entry, Record) and (entry.instance, entry.seq) == (
                record.instance,
                record.seq,
            ):
                continue
            if sum(isinstance(item, Record) for item in after) == CONTEXT_RECORDS:
                more_after = True
                break
            after.append(entry)
    return before, after, more_before, more_after


async def record_page(
    site: Site, request: Request, instance: str, seq: str, format: str | None = None
) -> Response:
    key = _record_key(instance, seq)
    values = params.collect(pairs(request), {"n": ("n", False), "utc": ("utc", False)})
    radius = NEIGHBOURS
    if "n" in values:
        radius = params.integer("n", values["n"][0], 0, MAX_NEIGHBOURS)
    utc = values.get("utc", ["0"])[0] == "1"

    def look(engine: Engine) -> dict[str, Any] | None:
        with engine.connect() as connection:
            row = library.record_row(connection, *key)
            if row is None:
                return None
            records, losses = library.instance_window(
                connection, key[0], key[1] - radius, key[1] + radius
            )
        record = next(item for item in records if item.seq == key[1])
        before, after, more_before, more_after = around(engine, record)
        return {"row": row, "record": record, "instance": _by_seq(records, losses),
                "before": before, "after": after, "more_before": more_before,
                "more_after": more_after}  # fmt: skip

    found = await read(site, site.timeout, look)
    if found is None:
        message = f"no record {key[1]} of instance {key[0]} in this store"
        return await error(site, request, message, 404)
    record: Record = found["record"]
    if format == "json":
        out = io.StringIO()
        library.write_records([record], RecordFormat.JSON, out, utc=utc)
        return Response(out.getvalue(), content_type="application/x-ndjson; charset=utf-8")
    t = record.time_ns
    window = View.parse(
        [("since", _epoch(t - CONTEXT_NS)), ("until", _epoch(t + CONTEXT_NS))]
        + ([("utc", "1")] if utc else [])
    )
    fields = {**found["row"], "time": library.iso_time(t, library.zone(utc)),
              "level_name": record.level.label}  # fmt: skip
    return await render(
        site,
        request,
        "kextlog_record.html",
        record=shown(record, utc),
        fields=sorted(fields.items()),
        same_instance=[shown(entry, utc) for entry in found["instance"]],
        before=[shown(entry, utc) for entry in found["before"]],
        after=[shown(entry, utc) for entry in found["after"]],
        more_before=found["more_before"],
        more_after=found["more_after"],
        radius=radius,
        window_href=window.link(),
        instance_href=View.parse([("instance", record.instance)]).link(),
        json_href=f"/record/{record.instance}/{record.seq}.json" + ("?utc=1" if utc else ""),
        data=jsontext.script_json({"record": shown(record, utc)}),
    )


def _by_seq(records: list[Record], losses: list[Loss]) -> list[Entry]:
    """An instance's records and the losses among them, in seq order."""
    merged: list[Entry] = [*records, *losses]
    return sorted(merged, key=lambda e: e.seq if isinstance(e, Record) else e.first_seq - 0.5)


# --- stats ------------------------------------------------------------------------


async def stats_page(site: Site, request: Request, format: str | None = None) -> Response:
    """`kextlog stats`' figures (and its JSON, as `kextlog stats -o json`)."""
    allowed = {"since": ("--since", False), "until": ("--until", False),
               "top": ("--top", False), "utc": ("--utc", False)}  # fmt: skip
    values = params.collect(pairs(request), allowed)
    window = params.record_filter({k: v for k, v in values.items() if k in ("since", "until")})
    top = params.integer("top", values["top"][0], 1, 1_000) if "top" in values else 10
    utc = values.get("utc", ["0"])[0] == "1"
    figures = await read(
        site,
        site.timeout,
        lambda _engine: library.collect_stats(
            site.url, since_ns=window.since_ns, until_ns=window.until_ns, top=top, utc=utc
        ),
    )
    fields = library.stats_fields(figures, library.zone(utc))
    if format == "json":
        return json_response(fields)
    total = figures.records or 1
    chart_json = {
        "bucket_seconds": figures.bucket_ns / library.NS_PER_SECOND,
        "labels": [row["start"][:19] for row in fields["rate"]],
        "series": [
            {
                "level": level.label,
                "counts": [bucket.counts[level - 1] for bucket in figures.buckets],
            }
            for level in sorted(Level)
            if figures.levels[level - 1]
        ],
        "lost": None,
    }
    return await render(
        site,
        request,
        "kextlog_stats.html",
        stats=fields,
        figures=figures,
        size=library.format_size,
        levels=[(level.label, figures.levels[level - 1],
                 f"{100 * figures.levels[level - 1] / total:.1f}%") for level in LEVELS],
        reasons=library.LOSS_REASON_WORDS,
        since=values.get("since", [""])[0],
        until=values.get("until", [""])[0],
        chart=jsontext.script_json(chart_json),
        json_href="/stats.json" + (f"?{request.query_string}" if request.query_string else ""),
    )  # fmt: skip


# --- SQL and canned views ---------------------------------------------------------

# Canned views: read-only SQL over the documented views (README), run as
# `kextlog sql` runs it; the errors of the last hour are a log view.
CANNED: dict[str, tuple[str, str, str]] = {
    "errors": ("Errors in the last hour", "The log, errors only, since an hour ago.",
               "/?level=error&since=1h"),
    "losses": ("Losses", "Every loss, newest first: which seqs, how many, when, why.",
               "SELECT * FROM lost ORDER BY id DESC"),
    "accounting": ("Per-instance accounting",
                   "Every seq of each instance up to its high-water mark is stored, lost, "
                   "filtered or pruned.",
                   "SELECT * FROM instance_accounting"),
    "processes": ("Busiest processes", "The processes with the most records.",
                  "SELECT * FROM process_counts ORDER BY records DESC LIMIT 50"),
}  # fmt: skip


async def views_page(site: Site, request: Request) -> Response:
    params.collect(pairs(request), {})
    views = [
        {"name": name, "title": title, "about": about,
         "href": sql if name == "errors" else f"/views/{name}"}
        for name, (title, about, sql) in CANNED.items()
    ]  # fmt: skip
    return await render(site, request, "kextlog_views.html", views=views)


async def canned_page(site: Site, request: Request, name: str) -> Response:
    params.collect(pairs(request), {})
    if name not in CANNED or name == "errors":
        if name == "errors":
            return Response.redirect(CANNED[name][2])
        return await error(site, request, f"no canned view {name!r}", 404)
    title, about, sql = CANNED[name]
    return await _sql(site, request, sql, None, title=title, about=about)


async def sql_page(site: Site, request: Request, format: str | None = None) -> Response:
    """Read-only SQL, as `kextlog sql` runs it: the library's sandbox (the
    file opened read-only, query_only, an authorizer that allows reading
    only), its time limit and its cap on rows."""
    given = params.collect(pairs(request), {"sql": ("sql", False)}, SQL_MAX_LENGTH)
    sql = given.get("sql", [""])[0]
    return await _sql(site, request, sql, format)


async def _sql(
    site: Site,
    request: Request,
    sql: str,
    format: str | None,
    *,
    title: str = "SQL",
    about: str = "",
) -> Response:
    result = None
    if sql.strip():
        result = await asyncio.to_thread(
            library.run_sql, site.url, sql, None, time_limit=SQL_SECONDS, max_rows=SQL_MAX_ROWS
        )
    if format is not None:
        if result is None:
            raise UsageError("sql: no SQL statement given")
        headers = {"x-kextlog-truncated": str(SQL_MAX_ROWS)} if result.truncated else {}
        # As kextlog sql -o csv|json writes them; JSON with large integers as strings.
        out = io.StringIO()
        output = SqlFormat.CSV if format == "csv" else SqlFormat.JSON
        library.write_rows(result.columns, result.rows, output, out)
        if output is SqlFormat.CSV:
            return Response(out.getvalue(), content_type="text/csv; charset=utf-8",
                            headers=headers)  # fmt: skip
        lines = (jsontext.dumps(json.loads(line)) for line in out.getvalue().splitlines())
        return Response("".join(line + "\n" for line in lines), headers=headers,
                        content_type="application/x-ndjson; charset=utf-8")  # fmt: skip
    query = f"sql={_quote(sql)}" if sql else ""
    return await render(
        site,
        request,
        "kextlog_sql.html",
        title=title,
        about=about,
        sql=sql,
        columns=result.columns if result else (),
        rows=[[_cell(value) for value in row] for row in result.rows] if result else [],
        truncated=result.truncated if result else False,
        max_rows=SQL_MAX_ROWS,
        timeout=SQL_SECONDS,
        ran=result is not None,
        json_href=f"/sql.json?{query}",
        csv_href=f"/sql.csv?{query}",
        edit_href=f"/sql?{query}",
    )


def _quote(text: str) -> str:
    return quote(text, safe="")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return "x'" + value.hex() + "'"
    return str(value)


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

"""The log pages: the log itself (newest first, with the filters of
`kextlog query`), its JSON/CSV export, facets, the rate chart and live
records (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import replace
from typing import Any

from datasette.utils.asgi import Request, Response

from . import jsontext, library, params
from .library import (
    Cursor,
    KextlogError,
    Level,
    Reader,
    Record,
    RecordFilter,
    RecordFormat,
    UsageError,
)
from .pages import (
    LEVELS,
    MAX_LIVE,
    Site,
    epoch,
    json_response,
    log,
    newest_first,
    pairs,
    read,
    render,
    shown,
)
from .params import View

FACET_SECONDS = 3.0  # the facets are extras: they give up sooner than the page
CHART_BUCKETS = 60
FACET_VALUES = 15
LIVE_KEEPALIVE_S = 15.0  # a quiet live stream gets a comment line this often


async def log_page(site: Site, request: Request) -> Response:
    view = View.parse(pairs(request))
    found = await read(site, site.timeout, lambda store: newest_first(store, view))
    rows = [shown(entry, view.utc) for entry in found]
    newest = next((row for row in rows if row["kind"] == "record"), None)
    oldest = next((row for row in reversed(rows) if row["kind"] == "record"), None)
    older = None
    if oldest is not None and sum(row["kind"] == "record" for row in rows) >= view.lines:
        # Until the oldest shown, included: records of that very nanosecond
        # show on both pages rather than on neither.
        older = view.link(until=[epoch(int(oldest["time_ns"]))])
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


async def export(site: Site, request: Request, format: str) -> Response:
    """The view's records as `kextlog query -n N -o json|csv` prints them."""
    view = View.parse(pairs(request))
    output = RecordFormat(format)

    def written(store: Reader) -> str:
        out = io.StringIO()
        wanted = replace(view.record_filter, lines=view.lines)
        with closing(library.entries(store, wanted)) as found:
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

    def counted(store: Reader, column: str, limit: int | None = None) -> list[tuple[Any, int]]:
        order = f"GROUP BY {column} ORDER BY count(*) DESC, {column}"
        with store.connect() as reading:
            rows = library.aggregate(
                reading,
                view.record_filter,
                f"{column}, count(*)",
                order if limit is None else f"{order} LIMIT {int(limit)}",
            )
            return [(value, int(count)) for value, count in rows]

    def values(found: list[tuple[Any, int]], name: str, spelled: Callable[[Any], str]):  # type: ignore[no-untyped-def]
        return [{"value": value, "count": count, "href": view.link(**{name: [spelled(value)]})}
                for value, count in found]  # fmt: skip

    def by_level(store: Reader) -> dict[str, Any]:
        counts = dict(counted(store, "level"))
        levels = [(level.label, counts[level]) for level in LEVELS if level in counts]
        return {"level": values(levels, "level", lambda name: f"{name}..{name}")}

    def by_process(store: Reader) -> dict[str, Any]:
        found = counted(store, "process", FACET_VALUES)
        return {"process": values(found, "process", params.exact_glob)}

    def by_instance(store: Reader) -> dict[str, Any]:
        by_row = counted(store, f"id >> {library.SEQ_BITS}")
        with store.connect() as reading:
            instances = library.instances_of(reading)
        by_uuid: dict[str, int] = {}
        by_host: dict[str, int] = {}
        for row, count in by_row:
            uuid, _, host = instances[row]
            by_uuid[uuid] = by_uuid.get(uuid, 0) + count
            by_host[host] = by_host.get(host, 0) + count

        def most(counts: dict[str, int]) -> list[tuple[str, int]]:
            return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

        return {"instance": values(most(by_uuid)[:FACET_VALUES], "instance", str),
                "host": values(most(by_host), "host", str)}  # fmt: skip

    async def facet(count: Callable[[Reader], dict[str, Any]], *names: str) -> dict[str, Any]:
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


def chart_data(store: Reader, record_filter: RecordFilter, utc: bool) -> dict[str, Any]:
    """Records per bucket of the filter's range, per level (the levels
    present), and the records lost per bucket: the rate chart."""
    with store.connect() as reading:
        start, end = record_filter.since_ns, record_filter.until_ns
        if start is None or end is None:
            # One each: SQLite reads a lone min() or max() at an end of the
            # time index, but the whole index for both in one SELECT.
            ((first,),) = library.aggregate(reading, record_filter, "min(time_ns)")
            ((last,),) = library.aggregate(reading, record_filter, "max(time_ns)")
            if first is None:
                return {"labels": [], "series": [], "lost": [], "bucket_seconds": None}
            start = first if start is None else start
            end = last if end is None else end
        size = library.choose_bucket(end - start, CHART_BUCKETS)
        origin = library.bucket_start(start, size, utc)
        counts: dict[int, dict[int, int]] = {}
        # Never negative: origin <= every time of the range.
        index = f"(time_ns - {int(origin)}) / {int(size)}"
        for number, level, count in library.aggregate(
            reading, record_filter, f"{index}, level, count(*)", f"GROUP BY {index}, level"
        ):
            counts.setdefault(int(level), {})[int(number)] = int(count)
        buckets = (end - origin) // size + 1
        lost = [0] * buckets
        for loss in library.losses_of(reading, record_filter):
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
        site, site.timeout, lambda store: chart_data(store, view.record_filter, view.utc)
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
                library.reading(site.url) as store,
                closing(library.follow(store, wanted, stop=stop)) as found,
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

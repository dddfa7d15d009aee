"""`kextlog stats`' figures, the canned views and read-only SQL (through
`kextlog sql`'s sandbox and limits)."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any
from urllib.parse import quote

from datasette.utils.asgi import Request, Response

from . import jsontext, library, params
from .library import Level, SqlFormat, UsageError
from .pages import (
    LEVELS,
    SQL_MAX_ROWS,
    SQL_SECONDS,
    Site,
    error,
    json_response,
    pairs,
    read,
    render,
)

SQL_MAX_LENGTH = 8_000  # characters of a statement (it travels in the URL)


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
        lambda _store: library.collect_stats(
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

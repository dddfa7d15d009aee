"""A record's page: all its fields, its instance's neighbours (by seq)
and every source's records around it in time."""

from __future__ import annotations

import io
import re
from contextlib import closing
from dataclasses import replace
from typing import Any

from datasette.utils.asgi import Request, Response

from . import jsontext, library, params
from .library import Cursor, Entry, Loss, Reader, Record, RecordFilter, RecordFormat, UsageError
from .pages import Site, epoch, error, pairs, read, render, shown
from .params import View

NEIGHBOURS = 10  # the same instance's records, seqs on each side
MAX_NEIGHBOURS = 1_000
CONTEXT_NS = 60 * library.NS_PER_SECOND  # every source's records, each side
CONTEXT_RECORDS = 25  # ... at most, on each side
_INSTANCE = re.compile(r"[0-9a-f]{32}")
_SEQ_LIMIT = 2**44 - 1


def _record_key(instance: str, seq: str) -> tuple[str, int]:
    if not _INSTANCE.fullmatch(instance):
        raise UsageError(f"instance: {instance[:40]!r} is not an instance id (32 hex digits)")
    return instance, params.integer("seq", seq, 0, _SEQ_LIMIT)


def around(store: Reader, record: Record) -> tuple[list[Entry], list[Entry], bool, bool]:
    """Every source's entries within CONTEXT_NS of the record, at most
    CONTEXT_RECORDS records on each side, nearest kept: (before, after,
    whether more were before, after)."""
    t = record.time_ns
    plain = RecordFilter()
    before_filter = replace(plain, since_ns=t - CONTEXT_NS, until_ns=t - 1, lines=CONTEXT_RECORDS)
    with closing(library.entries(store, before_filter)) as found:
        before = list(found)
    # The same nanosecond: what comes before the record in logged order.
    with closing(library.entries(store, replace(plain, since_ns=t, until_ns=t))) as found:
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
    with closing(library.entries(store, after_filter)) as found:
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

    def look(store: Reader) -> dict[str, Any] | None:
        with store.connect() as reading:
            row = library.record_row(reading, *key)
            if row is None:
                return None
            records, losses = library.instance_window(
                reading, key[0], key[1] - radius, key[1] + radius
            )
        record = next(item for item in records if item.seq == key[1])
        before, after, more_before, more_after = around(store, record)
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
        [("since", epoch(t - CONTEXT_NS)), ("until", epoch(t + CONTEXT_NS))]
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

"""One renderer for every output format, of records and of SQL results.

A record format is a function that writes an iterable of entries (records,
and losses where records are missing) to a text stream; line formats are
built from a function of one record and one of a loss (None: losses are not
shown in that format).  Adding a format (csv, table, cat, json-pretty,
short-iso) is one RecordFormat member and one entry in WRITERS.  Times are
computed from integer nanoseconds without floating point: microseconds are
truncated, never rounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from enum import Enum
from typing import Any, TextIO

from .records import Entry, Loss, Record

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Control characters other than tab and newline would drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class RecordFormat(str, Enum):
    """--output of `kextlog query`."""

    SHORT = "short"
    JSON = "json"


class SqlFormat(str, Enum):
    """--output of `kextlog sql`."""

    TABLE = "table"
    JSON = "json"


def zone(utc: bool) -> tzinfo | None:
    """The zone times are shown in: UTC, or None for the system's local zone."""
    return timezone.utc if utc else None


def record_time(time_ns: int, tz: tzinfo | None = None) -> datetime:
    """An aware datetime in tz (None: local) with the microseconds of time_ns."""
    return (EPOCH + timedelta(microseconds=time_ns // 1000)).astimezone(tz)


def iso_time(time_ns: int, tz: tzinfo | None = None) -> str:
    """2026-11-27T10:22:36.123456+00:00"""
    return record_time(time_ns, tz).isoformat(timespec="microseconds")


def record_short(record: Record, tz: tzinfo | None = None) -> str:
    """Nov 27 10:22:36.123456 ERROR   mds_stores[312:4411]: message

    One line per record: a trailing newline of the message is dropped,
    further lines are indented under the first, control characters escaped.
    """
    moment = record_time(record.time_ns, tz)
    stamp = f"{_MONTHS[moment.month - 1]} {moment:%d %H:%M:%S}.{moment.microsecond:06d}"
    head = f"{stamp} {record.level.name:<7} {_clean(record.process)}[{record.pid}:{record.tid}]: "
    message = _clean(record.message.rstrip("\n")).replace("\n", "\n" + " " * len(head))
    return head + message


def record_fields(record: Record, tz: tzinfo | None = None) -> dict[str, Any]:
    """The keys of the json formats, in their order."""
    return {
        "time": iso_time(record.time_ns, tz),
        "level": record.level.label,
        "pid": record.pid,
        "tid": record.tid,
        "process": record.process,
        "message": record.message,
        "seq": record.seq,
        "instance": record.instance,
    }


def record_json(record: Record, *, utc: bool = False) -> str:
    """One JSON object on one line, exactly as `kextlog query -o json [--utc]` prints it."""
    return json.dumps(record_fields(record, zone(utc)), ensure_ascii=False)


# The reasons of the losses table, in words.
LOSS_REASON_WORDS = {
    "ring-full": "ring full",  # the kext's ring was full: they went to the kernel's printf
    "released": "no longer held",  # acknowledged to an earlier client, then released
    "gap": "never sent",  # seqs the producer skipped without a LOSS
}


def loss_short(loss: Loss) -> str:
    """-- 120 records lost (seqs 5001..5120 of instance 0690a5df, ring full) --

    The marker `kextlog query` shows where records are missing, as journalctl
    shows "-- missed N kernel messages --": the instance by its first 8 hex
    digits (as git abbreviates), the reason in words (an unknown one as
    stored).  Every marker starts with "-- " and has " lost (" in it.
    """
    if loss.first_seq == loss.last_seq:
        seqs = f"seq {loss.first_seq}"
    else:
        seqs = f"seqs {loss.first_seq}..{loss.last_seq}"
    noun = "record" if loss.count == 1 else "records"
    reason = _clean(LOSS_REASON_WORDS.get(loss.reason, loss.reason)).replace("\n", "\\n")
    instance = _clean(loss.instance[:8])
    return f"-- {loss.count} {noun} lost ({seqs} of instance {instance}, {reason}) --"


RecordWriter = Callable[[Iterable[Entry], TextIO, tzinfo | None], None]


def _lines(
    line: Callable[[Record, tzinfo | None], str], marker: Callable[[Loss], str] | None
) -> RecordWriter:
    def write(entries: Iterable[Entry], out: TextIO, tz: tzinfo | None) -> None:
        for entry in entries:
            if isinstance(entry, Record):
                out.write(line(entry, tz))
            elif marker is not None:
                out.write(marker(entry))
            else:
                continue
            out.write("\n")

    return write


def _json_line(record: Record, tz: tzinfo | None) -> str:
    return json.dumps(record_fields(record, tz), ensure_ascii=False)


WRITERS: dict[RecordFormat, RecordWriter] = {
    RecordFormat.SHORT: _lines(record_short, loss_short),
    # One record object per line and nothing else: machines read losses from
    # the `lost` view (kextlog sql -o json "SELECT * FROM lost").
    RecordFormat.JSON: _lines(_json_line, None),
}


def write_records(
    entries: Iterable[Entry], output: RecordFormat, out: TextIO, *, utc: bool = False
) -> None:
    """Write records, and markers where records are lost (short only), in the
    given format, as they come (streaming)."""
    WRITERS[output](entries, out, zone(utc))


# --- SQL results ----------------------------------------------------------


def write_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    output: SqlFormat,
    out: TextIO,
    *,
    header: bool = True,
) -> None:
    """Rows of `kextlog sql`: an aligned table or one JSON object per line."""
    if output is SqlFormat.JSON:
        keys = _unique(columns)
        for row in rows:
            out.write(
                json.dumps(dict(zip(keys, map(_json_value, row), strict=True)), ensure_ascii=False)
            )
            out.write("\n")
    else:
        for line in table_lines(columns, rows, header=header):
            out.write(line)
            out.write("\n")


def table_lines(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool = True
) -> list[str]:
    """Columns two spaces apart, numbers right-aligned, a rule under the header."""
    cells = [[_cell(value) for value in row] for row in rows]
    head = [_clean(name) for name in columns]
    widths = [len(name) if header else 0 for name in head]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    numeric = [
        any(row[i] is not None for row in rows)
        and all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str], right: Sequence[bool]) -> str:
        padded = (
            value.rjust(width) if align else value.ljust(width)
            for value, width, align in zip(values, widths, right, strict=True)
        )
        return "  ".join(padded).rstrip()

    lines = []
    if header:
        lines.append(line(head, numeric))
        lines.append(line(["-" * width for width in widths], [False] * len(head)))
    lines.extend(line(row, numeric) for row in cells)
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return "x'" + value.hex() + "'"
    return _clean(str(value)).replace("\n", "\\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "x'" + value.hex() + "'"
    return value


def _unique(columns: Sequence[str]) -> list[str]:
    """Column names as JSON keys: a repeated name gets _2, _3, ... (one not taken)."""
    names = set(columns)
    keys: list[str] = []
    for name in columns:
        key, n = name, 1
        while key in keys or (key != name and key in names):
            n += 1
            key = f"{name}_{n}"
        keys.append(key)
    return keys


def _clean(text: str) -> str:
    return _CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text)

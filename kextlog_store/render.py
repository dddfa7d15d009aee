"""One renderer for every output format: of records (`kextlog query`), of
SQL results (`kextlog sql`) and of the store's figures (`kextlog stats`).

Record formats are either lines (short, short-iso, cat: one line per record
and a marker line where records are lost) or rows (json, json-pretty, csv,
table: the record's fields, written by the same row writers that write SQL
results).  Adding a format is one RecordFormat member and one entry in
WRITERS.  Times are computed from integer nanoseconds without floating
point: microseconds are truncated, never rounded.  Colour (by level, as
journalctl) is only ever added when the caller says so: the CLI decides
whether the output is a terminal.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

from .levels import Level
from .records import Cursor, Entry, Loss, Record

if TYPE_CHECKING:  # stats imports SQLAlchemy; rendering its figures does not need it
    from .stats import Stats

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# What would drive a terminal, or make it show other text than there is: C0
# controls but tab and newline, DEL, C1 controls (U+009B is an 8-bit CSI,
# U+0085 a newline to some), and the bidirectional embeddings, overrides and
# isolates that reorder what is shown ("Trojan Source").
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_UNSAFE}]")
_CONTROL_OR_NEWLINE = re.compile(f"[{_UNSAFE}\n]")
# The same in JSON text, where json.dumps has escaped C0 already and these
# can only stand inside strings, so a \uXXXX escape keeps the value.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape(text: str, *, newlines: bool = False) -> str:
    """text safe to write to a terminal: every character that could drive it
    (C0 but tab and newline, DEL, C1, bidirectional overrides) as an escape
    such as \\x1b or \\u202e; with newlines, a newline too, as \\n (for what
    must stay on one line).  Every text output of kextlog goes through it."""
    pattern = _CONTROL_OR_NEWLINE if newlines else _CONTROL
    return pattern.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    if code == 0x0A:
        return "\\n"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def json_text(value: Any, indent: int | None = None) -> str:
    """value as JSON (UTF-8 as it is, not \\u escapes) with nothing in it that
    drives a terminal: json.dumps escapes C0 controls, this the rest (DEL,
    C1, bidirectional overrides), which json.loads reads back the same."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


class RecordFormat(str, Enum):
    """--output of `kextlog query`."""

    SHORT = "short"
    SHORT_ISO = "short-iso"
    JSON = "json"
    JSON_PRETTY = "json-pretty"
    CSV = "csv"
    TABLE = "table"
    CAT = "cat"


class SqlFormat(str, Enum):
    """--output of `kextlog sql`."""

    TABLE = "table"
    JSON = "json"
    JSON_PRETTY = "json-pretty"
    CSV = "csv"


class StatsFormat(str, Enum):
    """--output of `kextlog stats`."""

    TEXT = "text"
    JSON = "json"


# --- colour -----------------------------------------------------------------

# As journalctl: errors bold red, warnings bold yellow, debug and trace dim.
LEVEL_STYLES = {
    Level.ERROR: "\x1b[1;31m",
    Level.WARNING: "\x1b[1;33m",
    Level.DEBUG: "\x1b[2m",
    Level.TRACE: "\x1b[2m",
}
MARKER_STYLE = "\x1b[1m"  # loss markers stand out without a colour
RESET = "\x1b[0m"


def paint(text: str, style: str | None) -> str:
    """text in style, line by line (a pager that cuts long lines keeps each
    line's style); None: as it is."""
    if not style or not text:
        return text
    return "\n".join(f"{style}{line}{RESET}" if line else line for line in text.split("\n"))


# --- times ------------------------------------------------------------------


def zone(utc: bool) -> tzinfo | None:
    """The zone times are shown in: UTC, or None for the system's local zone."""
    return timezone.utc if utc else None


def record_time(time_ns: int, tz: tzinfo | None = None) -> datetime:
    """An aware datetime in tz (None: local) with the microseconds of time_ns."""
    return (EPOCH + timedelta(microseconds=time_ns // 1000)).astimezone(tz)


def iso_time(time_ns: int, tz: tzinfo | None = None) -> str:
    """2026-11-27T10:22:36.123456+00:00"""
    return record_time(time_ns, tz).isoformat(timespec="microseconds")


class _Clock:
    """Formats record times, computing the calendar once per second: records
    come in time order, many to a second, and strftime is most of the cost
    of a short line.  One per output (the local zone may change between)."""

    def __init__(self, tz: tzinfo | None) -> None:
        self.tz = tz
        self._second: int | None = None
        self._short = self._iso = self._offset = ""

    def _at(self, seconds: int) -> None:
        moment = (EPOCH + timedelta(seconds=seconds)).astimezone(self.tz)
        self._short = f"{_MONTHS[moment.month - 1]} {moment:%d %H:%M:%S}"
        iso = moment.isoformat()
        self._iso, self._offset = iso[:19], iso[19:]
        self._second = seconds

    def short(self, time_ns: int) -> str:
        """Nov 27 10:22:36.123456"""
        seconds, nanos = divmod(time_ns, 1_000_000_000)
        if seconds != self._second:
            self._at(seconds)
        return f"{self._short}.{nanos // 1000:06d}"

    def iso(self, time_ns: int) -> str:
        """2026-11-27T10:22:36.123456+00:00"""
        seconds, nanos = divmod(time_ns, 1_000_000_000)
        if seconds != self._second:
            self._at(seconds)
        return f"{self._iso}.{nanos // 1000:06d}{self._offset}"


# --- records ------------------------------------------------------------------


def _line(stamp: str, record: Record) -> str:
    """STAMP LEVEL   process[pid:tid]: message, on one line: a trailing
    newline of the message is dropped, further lines are indented under the
    first, control characters escaped."""
    head = f"{stamp} {record.level.name:<7} {escape(record.process)}[{record.pid}:{record.tid}]: "
    message = escape(record.message.rstrip("\n")).replace("\n", "\n" + " " * len(head))
    return head + message


def record_short(record: Record, tz: tzinfo | None = None) -> str:
    """Nov 27 10:22:36.123456 ERROR   mds_stores[312:4411]: message"""
    return _line(_Clock(tz).short(record.time_ns), record)


def record_short_iso(record: Record, tz: tzinfo | None = None) -> str:
    """2026-11-27T10:22:36.123456+00:00 ERROR   mds_stores[312:4411]: message"""
    return _line(_Clock(tz).iso(record.time_ns), record)


def record_cat(record: Record) -> str:
    """The message alone, as journalctl -o cat: a trailing newline dropped,
    control characters escaped."""
    return escape(record.message.rstrip("\n"))


# The keys of the json formats and the columns of csv, in their order.
RECORD_KEYS = ("time", "level", "pid", "tid", "process", "message", "seq", "instance")
# The columns of -o table: the instance and seq are for machines (and cursors).
TABLE_KEYS = RECORD_KEYS[:6]


def record_fields(record: Record, tz: tzinfo | None = None) -> dict[str, Any]:
    """The keys of the json formats, in their order."""
    return _fields(record, _Clock(tz))


def _fields(record: Record, clock: _Clock) -> dict[str, Any]:
    """RECORD_KEYS, and for a record of the kernel's own log its syslog
    priority, facility and KEY=value fields (as journalctl's JSON has them)."""
    fields = dict(zip(RECORD_KEYS, _values(record, clock), strict=True))
    if record.priority is not None:
        fields["priority"] = record.priority
        fields["facility"] = record.facility
        fields["fields"] = json.loads(record.fields) if record.fields else {}
    return fields


def _values(record: Record, clock: _Clock) -> tuple[Any, ...]:
    return (
        clock.iso(record.time_ns),
        record.level.label,
        record.pid,
        record.tid,
        record.process,
        record.message,
        record.seq,
        record.instance,
    )


def record_json(record: Record, *, utc: bool = False) -> str:
    """One JSON object on one line, exactly as `kextlog query -o json [--utc]` prints it."""
    return json_text(record_fields(record, zone(utc)))


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
    reason = escape(LOSS_REASON_WORDS.get(loss.reason, loss.reason), newlines=True)
    instance = escape(loss.instance[:8])
    return f"-- {loss.count} {noun} lost ({seqs} of instance {instance}, {reason}) --"


# (entries, out, zone, colour by level, writing to a terminal)
RecordWriter = Callable[[Iterable[Entry], TextIO, tzinfo | None, bool, bool], None]


def _lines(line: Callable[[Record, _Clock], str]) -> RecordWriter:
    """A text format: a line per record, a marker line per loss."""

    def write(
        entries: Iterable[Entry], out: TextIO, tz: tzinfo | None, color: bool, _terminal: bool
    ) -> None:
        clock = _Clock(tz)
        for entry in entries:
            if isinstance(entry, Record):
                text = line(entry, clock)
                out.write(paint(text, LEVEL_STYLES.get(entry.level)) if color else text)
            else:
                text = loss_short(entry)
                out.write(paint(text, MARKER_STYLE) if color else text)
            out.write("\n")

    return write


def _record_csv(
    entries: Iterable[Entry], out: TextIO, tz: tzinfo | None, _color: bool, terminal: bool
) -> None:
    """-o csv: the records' fields as rows, no markers (machines read losses
    from the `lost` view)."""
    clock = _Clock(tz)
    found = (_values(entry, clock) for entry in entries if isinstance(entry, Record))
    for line in _csv_texts(RECORD_KEYS, found, terminal=terminal):
        out.write(line)


def _objects(indent: int | None) -> RecordWriter:
    """-o json, json-pretty: a JSON object per record (_fields), no markers
    (machines read losses from the `lost` view)."""

    def write(
        entries: Iterable[Entry], out: TextIO, tz: tzinfo | None, _color: bool, _terminal: bool
    ) -> None:
        clock = _Clock(tz)
        for entry in entries:
            if isinstance(entry, Record):
                out.write(json_text(_fields(entry, clock), indent))
                out.write("\n")

    return write


def _record_table(
    entries: Iterable[Entry], out: TextIO, tz: tzinfo | None, color: bool, _terminal: bool
) -> None:
    """-o table: the columns aligned over every row (so it is written at the
    end), a marker in the message column of a row of its own."""
    clock = _Clock(tz)
    rows: list[Sequence[Any]] = []
    styles: list[str | None] = []
    for entry in entries:
        if isinstance(entry, Record):
            rows.append(_values(entry, clock)[:6])
            styles.append(LEVEL_STYLES.get(entry.level))
        else:
            rows.append((clock.iso(entry.time_ns), None, None, None, None, loss_short(entry)))
            styles.append(MARKER_STYLE)
    _write_table(TABLE_KEYS, rows, out, styles if color else None)


WRITERS: dict[RecordFormat, RecordWriter] = {
    RecordFormat.SHORT: _lines(lambda record, clock: _line(clock.short(record.time_ns), record)),
    RecordFormat.SHORT_ISO: _lines(lambda record, clock: _line(clock.iso(record.time_ns), record)),
    RecordFormat.CAT: _lines(lambda record, _clock: record_cat(record)),
    RecordFormat.JSON: _objects(indent=None),
    RecordFormat.JSON_PRETTY: _objects(indent=2),
    RecordFormat.CSV: _record_csv,
    RecordFormat.TABLE: _record_table,
}


def write_records(
    entries: Iterable[Entry],
    output: RecordFormat,
    out: TextIO,
    *,
    utc: bool = False,
    color: bool = False,
    terminal: bool = False,
) -> None:
    """Write records, and markers where records are lost (in the text
    formats: short, short-iso, cat, table), in the given format, as they
    come (streaming; table at the end, as it aligns its columns).  color:
    by level, for a terminal.  terminal: out is one, so CSV is escaped too
    (every other format always is, or keeps every value with escapes: JSON);
    into a file or a pipe CSV keeps every value as it is."""
    WRITERS[output](entries, out, zone(utc), color, terminal)


def write_cursor(cursor: Cursor, out: TextIO) -> None:
    """-- cursor: i=...,s=...,t=...   (after the output, as journalctl --show-cursor)"""
    out.write(f"-- cursor: {cursor}\n")


# --- rows: SQL results, and records in the machine formats -----------------


def write_rows(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    output: SqlFormat,
    out: TextIO,
    *,
    header: bool = True,
    terminal: bool = False,
    max_bytes: int | None = None,
) -> int:
    """Rows of `kextlog sql`: an aligned table, JSON objects (one per line,
    or indented), or CSV with a header.  A repeated column name becomes
    name_2, ... as a JSON key; blobs are written as x'hex'.  terminal: out
    is one (CSV is escaped too, see write_records).

    max_bytes: the most that is written (UTF-8 bytes; None for no limit):
    the rows are written whole up to the first that would go past it.
    Returns how many rows were written."""
    if output is SqlFormat.TABLE:
        texts = _table_texts(columns, list(rows), header=header)
    elif output is SqlFormat.CSV:
        texts = _csv_texts(columns, rows, header=header, terminal=terminal)
    else:
        indent = 2 if output is SqlFormat.JSON_PRETTY else None
        keys = _unique(columns)
        texts = (
            json_text(dict(zip(keys, map(_json_value, row), strict=True)), indent) + "\n"
            for row in rows
        )
    left = max_bytes
    written = 0
    for text in texts:
        if left is not None:
            left -= len(text) if text.isascii() else len(text.encode())
            if left < 0:
                break
        out.write(text)
        written += 1
    head = 2 if output is SqlFormat.TABLE else 1 if output is SqlFormat.CSV else 0
    return max(written - head * header, 0)


class _Row:
    """What csv.writer writes a row to (in one write): kept as it is."""

    text = ""

    def write(self, text: str) -> None:
        self.text = text


def _csv_texts(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    header: bool = True,
    terminal: bool = False,
) -> Iterator[str]:
    """CSV, a line at a time (the header first), that standard readers (csv,
    sqlite-utils, spreadsheets) read back value for value: Python's writer
    quotes a field for the characters of its line terminator only, so a
    lone CR would end the row for them all; a row with one is quoted whole.
    On a terminal every value is escaped instead (nobody reads it back)."""
    target = _Row()
    plain = csv.writer(target, lineterminator="\n")
    quoted = csv.writer(target, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def line(values: Iterable[Any]) -> str:
        cells = ["" if value is None else _json_value(value) for value in values]
        if terminal:
            cells = [escape(str(cell)) for cell in cells]
        carriage = any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (quoted if carriage else plain).writerow(cells)
        return target.text

    if header:
        yield line(columns)
    for row in rows:
        yield line(row)


def _write_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    out: TextIO,
    styles: Sequence[str | None] | None = None,
) -> None:
    lines = _table_texts(columns, rows)
    if styles is not None:
        painted = iter(styles)
        head = [next(lines), next(lines)]
        lines = itertools.chain(head, (paint(line, next(painted)) for line in lines))
    for line in lines:
        out.write(line)


def table_lines(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool = True
) -> list[str]:
    """Columns two spaces apart, numbers right-aligned, a rule under the header."""
    return [line.removesuffix("\n") for line in _table_texts(columns, rows, header=header)]


def _table_texts(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool = True
) -> Iterator[str]:
    """table_lines() one at a time, each with its newline: a wide column
    pads every row, so the table may be much larger than its values."""
    cells = [[_cell(value) for value in row] for row in rows]
    head = [escape(name, newlines=True) for name in columns]
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
        return "  ".join(padded).rstrip() + "\n"

    if header:
        yield line(head, numeric)
        yield line(["-" * width for width in widths], [False] * len(head))
    for row in cells:
        yield line(row, numeric)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return "x'" + value.hex() + "'"
    return escape(str(value), newlines=True)


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


# --- the store's figures: kextlog stats and kextlog prune ---------------------

# Bars that read without colour: one glyph per level, the severe ones darkest.
LEVEL_GLYPHS = {
    Level.ERROR: "█",
    Level.WARNING: "▓",
    Level.INFO: "▒",
    Level.DEBUG: "░",
    Level.TRACE: "·",
}
CHART_WIDTH = 40  # glyphs for the fullest bucket


def format_size(size: int) -> str:
    """1536 -> 1.5 KiB (powers of 1024, as prune's --max-size)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _when(time_ns: int | None, tz: tzinfo | None) -> str:
    """2026-11-27 10:22:36 (seconds are enough to say where a range lies)."""
    return "-" if time_ns is None else _Clock(tz).iso(time_ns)[:19].replace("T", " ")


def bar(counts: Sequence[int], scale: int, width: int = CHART_WIDTH, color: bool = False) -> str:
    """A bar of width * sum(counts) / scale glyphs (at least one when the
    counts are not all 0), one run per level from ERROR down to TRACE, each
    as long as its share, rounded so that the runs add up to the bar; a
    level with records gets at least one glyph while the bar has room."""
    total = sum(counts)
    if not total or not scale:
        return ""
    length = max(1, round(width * total / scale))
    present = [level for level in sorted(Level, reverse=True) if counts[level - 1]]
    runs, done, seen = [], 0, 0
    for index, level in enumerate(present):
        later = len(present) - index - 1  # levels still to come, a glyph each if room
        seen += counts[level - 1]
        end = min(max(done + 1, round(length * seen / total)), length - later)
        if end <= done:
            continue
        glyphs = LEVEL_GLYPHS[level] * (end - done)
        runs.append(paint(glyphs, LEVEL_STYLES.get(level)) if color else glyphs)
        done = end
    return "".join(runs)


def _bucket_label(start_ns: int, size_ns: int, tz: tzinfo | None) -> str:
    stamp = _Clock(tz).iso(start_ns)
    if size_ns % 86_400_000_000_000 == 0:
        return stamp[:10]  # 2026-11-27
    if size_ns % 60_000_000_000 == 0:
        return stamp[5:16].replace("T", " ")  # 11-27 10:20
    return stamp[5:19].replace("T", " ")  # 11-27 10:20:05


def _duration(size_ns: int) -> str:
    for unit, ns in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if size_ns % (ns * 1_000_000_000) == 0:
            return f"{size_ns // (ns * 1_000_000_000)}{unit}"
    return f"{size_ns}ns"


def stats_fields(stats: Stats, tz: tzinfo | None = None) -> dict[str, Any]:
    """The figures of `kextlog stats -o json`, times in ISO 8601."""

    def iso(time_ns: int | None) -> str | None:
        return None if time_ns is None else _Clock(tz).iso(time_ns)

    database = stats.database
    return {
        "database": None
        if database is None
        else {
            "path": database.path,
            "file_bytes": database.file_bytes,
            "wal_bytes": database.wal_bytes,
            "page_size": database.page_size,
            "page_count": database.page_count,
            "free_pages": database.free_pages,
        },
        "since": iso(stats.since_ns),
        "until": iso(stats.until_ns),
        "records": stats.records,
        "first": iso(stats.first_ns),
        "last": iso(stats.last_ns),
        "levels": {level.label: stats.levels[level - 1] for level in Level},
        "processes": [
            {"process": item.process, "records": item.records, "pids": item.pids}
            for item in stats.processes
        ],
        "process_names": stats.process_names,
        "bucket_seconds": stats.bucket_ns / 1e9,
        "rate": [
            {
                "start": iso(bucket.start_ns),
                **{level.label: bucket.counts[level - 1] for level in Level},
                "total": bucket.total,
            }
            for bucket in stats.buckets
        ],
        "losses": [
            {"reason": item.reason, "losses": item.losses, "records": item.records}
            for item in stats.losses
        ],
        "instances": [
            {
                "instance": item.instance,
                "source": item.source,
                "name": item.name,
                "boot_id": item.boot_id,
                "producer_version": item.producer_version,
                "first_seen": iso(item.first_seen_ns),
                "last_seen": iso(item.last_seen_ns),
                "high_water": item.high_water,
                "stored": item.stored,
                "lost": item.lost,
                "filtered": item.filtered,
                "pruned": item.pruned,
                "discrepancy": item.discrepancy,
                "ahead": item.ahead,
                "first_record": iso(item.first_record_ns),
                "last_record": iso(item.last_record_ns),
            }
            for item in stats.instances
        ],
    }


def stats_lines(stats: Stats, tz: tzinfo | None = None, *, color: bool = False) -> list[str]:
    """`kextlog stats` as text: sections of aligned tables and a bar chart."""
    lines: list[str] = []
    database = stats.database
    if database is not None:
        used = (database.page_count - database.free_pages) * database.page_size
        lines.append(f"Database  {escape(database.path)}")
        lines.append(
            f"  {format_size(database.file_bytes)} on disk"
            f" ({format_size(database.wal_bytes)} more in the -wal file),"
            f" {format_size(used)} in use, {database.free_pages:,} free pages"
            f" of {database.page_size:,} bytes"
        )
    window = ""
    if stats.since_ns is not None or stats.until_ns is not None:
        window = f", in the window {_when(stats.since_ns, tz)} .. {_when(stats.until_ns, tz)}"
    lines.append(
        f"Records   {stats.records:,}{window}"
        + (
            f", from {_when(stats.first_ns, tz)} to {_when(stats.last_ns, tz)}"
            if stats.records
            else ""
        )
    )
    total = stats.records or 1
    levels = [
        (level.label, stats.levels[level - 1], f"{100 * stats.levels[level - 1] / total:.1f}%")
        for level in sorted(Level, reverse=True)
    ]
    lines += ["", "By level", *_indent(table_lines(("level", "records", "share"), levels))]
    shown = len(stats.processes)
    processes = [
        (item.process, item.records, f"{100 * item.records / total:.1f}%", item.pids)
        for item in stats.processes
    ]
    lines += [
        "",
        f"By process (the top {shown} of {stats.process_names})",
        *_indent(table_lines(("process", "records", "share", "pids"), processes)),
    ]
    if stats.buckets:
        scale = max(bucket.total for bucket in stats.buckets)
        legend = "  ".join(f"{LEVEL_GLYPHS[level]} {level.label}" for level in sorted(Level)[::-1])
        lines += ["", f"Records per {_duration(stats.bucket_ns)} ({legend})"]
        chart = [
            (_bucket_label(bucket.start_ns, stats.bucket_ns, tz), bucket.total, "")
            for bucket in stats.buckets
        ]
        for line, bucket in zip(
            _indent(table_lines(("start", "records", ""), chart, header=False)),
            stats.buckets,
            strict=True,
        ):
            lines.append(f"{line}  {bar(bucket.counts, scale, color=color)}".rstrip())
    lost = sum(item.records for item in stats.losses)
    rows = sum(item.losses for item in stats.losses)
    lines += ["", f"Losses    {lost:,} records in {rows:,} losses"]
    if stats.losses:
        by_reason = [
            (LOSS_REASON_WORDS.get(item.reason, item.reason), item.losses, item.records)
            for item in stats.losses
        ]
        lines += _indent(table_lines(("reason", "losses", "records"), by_reason))
    lines += ["", f"Instances {len(stats.instances)} (every seq up to the high-water mark"]
    lines[-1] += " is stored, lost, filtered or pruned)"
    accounts = [
        (
            item.instance[:8],
            item.source,
            item.high_water,
            item.stored,
            item.lost,
            item.filtered,
            item.pruned,
            _when(item.first_record_ns, tz),
            _when(item.last_record_ns, tz),
        )
        for item in stats.instances
    ]
    if accounts:
        columns = ("instance", "source", "high water", "stored", "lost", "filtered", "pruned",
                   "first record", "last record")  # fmt: skip
        lines += _indent(table_lines(columns, accounts))
    ahead = [item for item in stats.instances if item.ahead]
    for item in ahead:
        lines.append(
            f"  instance {item.instance[:8]}: {item.ahead:,} more records stored beyond"
            " its high-water mark, waiting for the seqs before them"
        )
    for item in stats.instances:
        if item.discrepancy:
            lines.append(f"  instance {item.instance[:8]}: {_discrepancy(item.discrepancy)}")
    return lines


def _discrepancy(seqs: int) -> str:
    """An instance's accounting that does not add up, in words."""
    if seqs > 0:
        return (
            f"{seqs:,} seqs up to its high-water mark are neither stored, lost, filtered"
            " nor pruned: rows went without prune (`kextlog db check`)"
        )
    return f"{-seqs:,} seqs are counted twice (`kextlog db check`)"


def _indent(lines: Iterable[str]) -> list[str]:
    return ["  " + line for line in lines]


def write_stats(
    stats: Stats, output: StatsFormat, out: TextIO, *, utc: bool = False, color: bool = False
) -> None:
    """`kextlog stats`: text (tables and a chart) or one JSON object."""
    if output is StatsFormat.JSON:
        out.write(json_text(stats_fields(stats, zone(utc)), indent=2))
        out.write("\n")
        return
    for line in stats_lines(stats, zone(utc), color=color):
        out.write(line)
        out.write("\n")


def prune_lines(result: Any) -> list[str]:
    """What `kextlog prune` removed (a retention.PruneResult), in words."""
    by_level = ", ".join(
        f"{Level(number).label if number in Level._value2member_map_ else number} {count:,}"
        for number, count in sorted(result.records.items())
    )
    losses = "loss row" if result.losses == 1 else "loss rows"
    lines = [
        f"removed {result.removed:,} records"
        + (f" ({by_level})" if by_level else "")
        + f" and {result.losses:,} {losses}"
    ]
    lines.append(
        f"in use {format_size(result.size_before)} -> {format_size(result.size_after)},"
        f" file {format_size(result.file_before)} -> {format_size(result.file_after)}"
    )
    if result.stopped:
        lines.append("stopped before the end")
    return lines

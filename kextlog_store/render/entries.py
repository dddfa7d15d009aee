"""The records and loss markers of `kextlog query` (and of ingest's --echo),
in every RecordFormat.

The formats are either lines (short, short-iso, cat: one line per record
and a marker line where records are lost) or rows (json, json-pretty, csv,
table: the record's fields, written by the row writers of rows.py that
write SQL results too).  Adding a format is one RecordFormat member and one
entry in WRITERS.

The read path hands records over in batches (Records).  The line formats
and json write a batch as one comprehension over its rows, as the record's
own renderer would write each: the fields with nothing to escape in them
are the same text either way (what the batch then shows is checked for
that once, as one text), and a record that needs more (an escape, more
lines, bytes that are not text, a kmsg record's fields) is written by its
own renderer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import tzinfo
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, TextIO

from ..levels import Level
from ..records import (
    NS_PER_SECOND,
    SEQ_BITS,
    SEQ_MASK,
    STORED_BYTES,
    Cursor,
    Found,
    Loss,
    LossReason,
    Record,
    Records,
    one_by_one,
)
from .formats import RecordFormat
from .text import (
    LEVEL_STYLES,
    MARKER_STYLE,
    Clock,
    escape,
    json_safe,
    json_text,
    paint,
    plain,
    zone,
)

# Each level's name as a line shows it, padded (an enum's .name is a call).
_LEVEL_NAMES = {level: f"{level.name:<7}" for level in Level}
_LEVEL_LABELS = {level: level.label for level in Level}


def _line(stamp: str, record: Record) -> str:
    """STAMP LEVEL   process[pid:tid]: message, on one line: a trailing
    newline of the message is dropped, further lines are indented under the
    first, control characters escaped."""
    process = escape(record.process)
    head = f"{stamp} {_LEVEL_NAMES[record.level]} {process}[{record.pid}:{record.tid}]: "
    message = escape(record.shown.rstrip("\n"))
    if "\n" in message:
        message = message.replace("\n", "\n" + " " * len(head))
    return head + message


def record_short(record: Record, tz: tzinfo | None = None) -> str:
    """Nov 27 10:22:36.123456 ERROR   mds_stores[312:4411]: message"""
    return _line(Clock(tz).short(record.time_ns), record)


def record_short_iso(record: Record, tz: tzinfo | None = None) -> str:
    """2026-11-27T10:22:36.123456+00:00 ERROR   mds_stores[312:4411]: message"""
    return _line(Clock(tz).iso(record.time_ns), record)


def record_cat(record: Record) -> str:
    """The message alone, as journalctl -o cat: a trailing newline dropped,
    control characters escaped."""
    return escape(record.shown.rstrip("\n"))


# The keys of the json formats, in their order: the cursor names the record
# for --cursor/--after-cursor, as journalctl's __CURSOR.
RECORD_KEYS = (
    "time", "level", "pid", "tid", "process", "message", "seq", "instance", "host", "cursor"
)  # fmt: skip
# ... and for a record of the kernel's own log (kmsg) these after them.
KMSG_KEYS = ("priority", "facility", "fields")
# The columns of -o csv: every key json has, empty where a record has none.
CSV_KEYS = RECORD_KEYS + KMSG_KEYS
# The columns of -o table: the instance and seq are for machines (and cursors).
TABLE_KEYS = RECORD_KEYS[:6]


def record_fields(record: Record, tz: tzinfo | None = None) -> dict[str, Any]:
    """The keys of the json formats, in their order."""
    return _fields(record, Clock(tz))


def _fields(record: Record, clock: Clock) -> dict[str, Any]:
    """RECORD_KEYS, and for a record of the kernel's own log its syslog
    priority, facility and KEY=value fields (as journalctl's JSON has them).
    A message that is not UTF-8 text is its bytes, an array of numbers (as
    journalctl shows such a field)."""
    raw = record.message_raw
    message = record.message if raw is None else list(raw)
    fields = dict(zip(RECORD_KEYS, _values(record, clock, message), strict=True))
    if record.priority is not None:
        fields["priority"] = record.priority
        fields["facility"] = record.facility
        fields["fields"] = json.loads(record.fields) if record.fields else {}
    return fields


def _values(record: Record, clock: Clock, message: Any) -> tuple[Any, ...]:
    return (
        clock.iso(record.time_ns),
        record.level.label,
        record.pid,
        record.tid,
        record.process,
        message,
        record.seq,
        record.instance,
        record.host,
        str(Cursor.of(record)),
    )


def record_json(record: Record, *, utc: bool = False) -> str:
    """One JSON object on one line, exactly as `kextlog query -o json [--utc]` prints it."""
    return json_text(record_fields(record, zone(utc)))


# Each reason of the losses table, in words.
LOSS_REASON_WORDS: dict[LossReason | str, str] = {
    LossReason.RING_FULL: "ring full",  # they went to the kernel's printf
    LossReason.RELEASED: "no longer held",  # acknowledged to an earlier client, then released
    LossReason.GAP: "never sent",  # seqs the producer skipped without a LOSS
    LossReason.MALFORMED: "malformed input",  # in frames ingest skipped
    LossReason.OVERWRITTEN: "overwritten",  # by the kernel's log going round
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
RecordWriter = Callable[[Iterable[Found], TextIO, tzinfo | None, bool, bool], None]
# A record's own line (without its newline), and a batch's lines (each with
# its newline) as that would write them where nothing is to be escaped.
LineOf = Callable[[Record, Clock], str]
BatchLines = Callable[[Sequence[Sequence[Any]], Clock], list[str]]


def _lines(line: LineOf, batch_lines: BatchLines) -> RecordWriter:
    """A text format: a line per record, a marker line per loss."""

    def write(
        entries: Iterable[Found], out: TextIO, tz: tzinfo | None, color: bool, _terminal: bool
    ) -> None:
        clock = Clock(tz)
        for entry in entries:
            if isinstance(entry, Records):
                out.write(_batch_text(entry, line, batch_lines, clock, color))
            elif isinstance(entry, Record):
                text = line(entry, clock)
                out.write((paint(text, LEVEL_STYLES.get(entry.level)) if color else text) + "\n")
            else:
                text = loss_short(entry)
                out.write((paint(text, MARKER_STYLE) if color else text) + "\n")

    return write


def _batch_text(
    batch: Records, line: LineOf, batch_lines: BatchLines, clock: Clock, color: bool
) -> str:
    """A batch's lines as one text: as batch_lines writes them when there
    is nothing in them to escape or indent, else line by line, each record
    with something in it by its own renderer."""
    try:
        lines = batch_lines(batch.rows, clock)
    except KeyError:  # a level no Level has: the record says so (DatabaseError)
        lines = [line(record, clock) + "\n" for record in batch]
    text = "".join(lines)
    if not lines or (not color and text.count("\n") == len(lines) and plain(text)):
        return text
    shown = []
    for written, row in zip(lines, batch.rows, strict=True):
        if written.count("\n") == 1 and plain(written):
            text = written[:-1]
        else:
            text = line(Record.of_columns(row, batch.instances), clock)
        shown.append(paint(text, LEVEL_STYLES.get(row[1])) if color else text)
    return "\n".join(shown) + "\n"


def _short_lines(rows: Sequence[Sequence[Any]], clock: Clock) -> list[str]:
    shorts, names = clock.shorts, _LEVEL_NAMES
    return [
        f"{shorts[t // NS_PER_SECOND]}.{t // 1000 % 1_000_000:06d} {names[level]}"
        f" {process}[{pid}:{tid}]: {message}\n"
        for t, level, pid, tid, process, message, _, _, _, _, _ in rows
    ]


def _short_iso_lines(rows: Sequence[Sequence[Any]], clock: Clock) -> list[str]:
    isos, offsets, names = clock.isos, clock.offsets, _LEVEL_NAMES
    return [
        f"{isos[t // NS_PER_SECOND]}.{t // 1000 % 1_000_000:06d}{offsets[t // NS_PER_SECOND]}"
        f" {names[level]} {process}[{pid}:{tid}]: {message}\n"
        for t, level, pid, tid, process, message, _, _, _, _, _ in rows
    ]


def _cat_lines(rows: Sequence[Sequence[Any]], _clock: Clock) -> list[str]:
    if not {row[1] for row in rows} <= _LEVEL_NAMES.keys():
        raise KeyError("a level no Level has")  # as the other formats find it
    return [f"{row[5]}\n" for row in rows]


def _record_csv(
    entries: Iterable[Found], out: TextIO, tz: tzinfo | None, _color: bool, terminal: bool
) -> None:
    """-o csv: the records' fields as rows, no markers (machines read losses
    from the `lost` view); a message as stored (one that is not UTF-8 text
    with its bytes as \\xHH escapes)."""
    from .rows import csv_texts  # CSV and tables only: not loaded for the rest

    clock = Clock(tz)
    found = (
        (*_values(entry, clock, entry.message), entry.priority, entry.facility, entry.fields)
        for entry in one_by_one(entries)
        if isinstance(entry, Record)
    )
    for line in csv_texts(CSV_KEYS, found, terminal=terminal):
        out.write(line)


def _objects(indent: int | None) -> RecordWriter:
    """-o json, json-pretty: a JSON object per record (_fields), no markers
    (machines read losses from the `lost` view)."""

    def write(
        entries: Iterable[Found], out: TextIO, tz: tzinfo | None, _color: bool, _terminal: bool
    ) -> None:
        clock = Clock(tz)
        for entry in entries:
            if isinstance(entry, Records) and indent is None:
                out.write(json_safe("".join(_json_lines(entry, clock))))
            elif not isinstance(entry, Loss):
                for record in [entry] if isinstance(entry, Record) else entry:
                    out.write(json_text(_fields(record, clock), indent) + "\n")

    return write


def _json_lines(batch: Records, clock: Clock) -> list[str]:
    """A batch's lines of -o json as json_text() writes each record's (but
    for the escapes json_safe() adds), with a record that is more than its
    columns (bytes that are not text, a kmsg record's fields) by _fields."""
    isos, offsets, labels, text = clock.isos, clock.offsets, _LEVEL_LABELS, encode_basestring
    instances = batch.instances
    try:
        lines = [
            f'{{"time": "{isos[t // NS_PER_SECOND]}.{t // 1000 % 1_000_000:06d}'
            f'{offsets[t // NS_PER_SECOND]}", "level": "{labels[level]}", "pid": {pid:d},'
            f' "tid": {tid:d}, "process": {text(process)}, "message": {text(message)},'
            f' "seq": {key & SEQ_MASK:d}, "instance": {text(instance)}, "host": {text(host)},'
            f' "cursor": {text(f"i={instance},s={key & SEQ_MASK},t={t}")}}}\n'
            if not flags & STORED_BYTES and priority is None
            else None
            for t, level, pid, tid, process, message, key, flags, priority, _, _ in batch.rows
            for instance, _, host in (instances[key >> SEQ_BITS],)
        ]  # fmt: skip
    except (KeyError, TypeError, ValueError):  # a column no record has: its Record says which
        lines = [None] * len(batch)
    if None in lines:
        for index, record in enumerate(batch):
            if lines[index] is None:
                lines[index] = json_text(_fields(record, clock)) + "\n"
    return lines  # type: ignore[return-value]


def _record_table(
    entries: Iterable[Found], out: TextIO, tz: tzinfo | None, color: bool, _terminal: bool
) -> None:
    """-o table: the columns aligned over every row (so it is written at the
    end), a marker in the message column of a row of its own."""
    from .rows import write_table

    clock = Clock(tz)
    rows: list[Sequence[Any]] = []
    styles: list[str | None] = []
    for entry in one_by_one(entries):
        if isinstance(entry, Record):
            rows.append(_values(entry, clock, entry.shown)[:6])
            styles.append(LEVEL_STYLES.get(entry.level))
        else:
            rows.append((clock.iso(entry.time_ns), None, None, None, None, loss_short(entry)))
            styles.append(MARKER_STYLE)
    write_table(TABLE_KEYS, rows, out, styles if color else None)


WRITERS: dict[RecordFormat, RecordWriter] = {
    RecordFormat.SHORT: _lines(
        lambda record, clock: _line(clock.short(record.time_ns), record), _short_lines
    ),
    RecordFormat.SHORT_ISO: _lines(
        lambda record, clock: _line(clock.iso(record.time_ns), record), _short_iso_lines
    ),
    RecordFormat.CAT: _lines(lambda record, _clock: record_cat(record), _cat_lines),
    RecordFormat.JSON: _objects(indent=None),
    RecordFormat.JSON_PRETTY: _objects(indent=2),
    RecordFormat.CSV: _record_csv,
    RecordFormat.TABLE: _record_table,
}


def write_records(
    entries: Iterable[Found],
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

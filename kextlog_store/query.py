"""The read path: records matching a filter (RecordFilter), in the order
they were logged, with the losses among them.  The filter's SQL is
conditions.py's; following the log as it grows is follow.py's, read-only
SQL sql.py's.

Only what reading needs is imported here: SQL text for both back ends, read
through store/engine.py's readers (on SQLite the stdlib's driver); never
SQLAlchemy on SQLite, never Alembic, cffi or the CLI.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from .conditions import Scope, Sql, look_up, where
from .errors import DatabaseError, UsageError
from .levels import Level
from .records import (
    INT64_MAX,
    PID_MAX,
    SEQ_BITS,
    Cursor,
    Entry,
    Found,
    Loss,
    LossReason,
    Record,
    Records,
    one_by_one,
)
from .regex import grep_pattern
from .store.engine import Reader, Reading


@dataclass(frozen=True)
class RecordFilter:
    """Which records `kextlog query` shows; every field narrows the selection.

    levels: (lowest, highest), both included; None for all.
    since_ns / until_ns: wall-clock bounds in UTC nanoseconds, both included
    (as journalctl's --since/--until).
    pids: any of these pids; empty for all.
    processes: any of these process names, each exact or a glob (* ? [...],
    case-sensitive, as the shell's); empty for all.
    grep: a regular expression searched in the message (RE2's syntax),
    case-insensitive unless it has an upper-case letter (one not right after
    a backslash, so \\S and \\W do not count), as journalctl's --grep.
    instance: a kext instance id, a unique prefix of one, or an offset: 0 the
    newest instance (by when ingest first saw it), -1 the one before, ...;
    with sources, counted among the instances of those sources.
    sources: instances read from any of these sources (e.g. unix:/run/a.sock).
    hosts: instances registered by ingest on any of these hosts.
    cursor / after_cursor: only records at / after that place in logged order.
    lines: only the last N matching records (still in logged order).
    reverse: newest first.
    """

    levels: tuple[Level, Level] | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    pids: tuple[int, ...] = ()
    processes: tuple[str, ...] = ()
    grep: str | None = None
    instance: str | None = None
    sources: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    cursor: Cursor | None = None
    after_cursor: Cursor | None = None
    lines: int | None = None
    reverse: bool = False

    def __post_init__(self) -> None:
        if self.lines is not None and not 0 <= self.lines <= INT64_MAX:
            raise UsageError(f"--lines must be from 0 to {INT64_MAX}, not {self.lines}")
        for pid in self.pids:
            if not 0 <= pid <= PID_MAX:
                raise UsageError(f"--pid must be from 0 to {PID_MAX}, not {pid}")
        if self.cursor is not None and self.after_cursor is not None:
            raise UsageError("give --cursor or --after-cursor, not both")
        if self.grep is not None:
            grep_pattern(self.grep)  # a bad pattern fails here, before any reading


# A record's columns, of the records as `r`, in the order Record.of_columns()
# takes them: no join of the instances, which costs a search per record
# (a third of reading the record); a batch of rows names its instances
# (Instances) by the record key.
COLUMNS = "r.time_ns, r.level, r.pid, r.tid, r.process, r.message, r.id, r.flags," + (
    " r.syslog_priority, r.facility, r.fields"
)
RECORDS = "records AS r"


def select_records(
    record_filter: RecordFilter, sql: Sql, scope: Scope | None = None, rows: str = RECORDS
) -> str:
    """The SELECT behind records(): in logged order (time, then the record
    key, that is instance and seq); newest first when only the last N are
    wanted or with reverse.  scope: what the filter's instance, cursors and
    pids name in the store (as entries() looks them up); None when the
    filter names none of them.  rows: the records as `r` (--follow: a few
    new rows)."""
    statement = select_matching(record_filter, sql, scope, rows)
    if record_filter.lines is None and not record_filter.reverse:
        return statement + " ORDER BY r.time_ns, r.id"
    statement += " ORDER BY r.time_ns DESC, r.id DESC"
    if record_filter.lines is None:
        return statement
    return f"{statement} LIMIT {sql.param(record_filter.lines)}"


def select_matching(
    record_filter: RecordFilter, sql: Sql, scope: Scope | None = None, rows: str = RECORDS
) -> str:
    """The SELECT of the records a filter matches, in no order and all of
    them (lines and reverse aside): select_records' own, to aggregate over
    (kextlog web's facets and chart)."""
    terms = where(record_filter, scope or Scope(), sql, indexed=rows == RECORDS)
    statement = f"SELECT {COLUMNS} FROM {rows}"
    return statement + " WHERE " + " AND ".join(terms) if terms else statement


def records(reader: Reader, record_filter: RecordFilter) -> Generator[Record, None, None]:
    """The matching records in logged order (time, instance, seq), or newest
    first with reverse, streamed.

    Close the generator (contextlib.closing) before disposing of the reader.
    Errors of the database come out as errors.DatabaseError while iterating.
    """
    with reader.connect() as reading:
        sql = Sql.on(reading)
        statement = select_records(record_filter, sql, look_up(reading, record_filter))
        rows: Iterable[Sequence[Any]] = reading.execute(statement, sql.params)
        if record_filter.lines is not None and not record_filter.reverse:
            rows = list(rows)[::-1]
        yield from one_by_one(batched(rows, InstanceRows(reading)))


# Rows to a batch (Records): enough that a batch's one Python call per
# record format is nothing beside its rows, few enough to stream.
BATCH_ROWS = 1000


def batched(rows: Iterable[Sequence[Any]], instances: InstanceRows) -> Iterator[Records]:
    """rows as Records of BATCH_ROWS (the last fewer), as they come."""
    pending = iter(rows)
    while batch := list(islice(pending, BATCH_ROWS)):
        instances.cover(batch)
        yield Records(batch, instances)


def instances_of(reading: Reading) -> dict[int, tuple[str, str, str]]:
    """Each instance's id (HELLO's), source and host, by its row id (a
    record key's high bits: records.Instances)."""
    rows = reading.execute("SELECT id, uuid, source, host FROM instances", [])
    return {row_id: (uuid, source, host) for row_id, uuid, source, host in rows}


class InstanceRows(dict[int, tuple[str, str, str]]):
    """The instances of a reading's records (instances_of), read again when
    a record of one not read yet comes: instances are added, never removed."""

    def __init__(self, reading: Reading) -> None:
        super().__init__()
        self._reading = reading

    def cover(self, rows: Sequence[Sequence[Any]]) -> None:
        """Have the instance of every row (by its record key, column 6)."""
        wanted = {row[6] >> SEQ_BITS for row in rows}
        if wanted <= self.keys():
            return
        self.update(instances_of(self._reading))
        missing = wanted - self.keys()
        if missing:
            raise DatabaseError(
                f"records of instance row {min(missing)}, which the store does not have"
            )


# --- losses among the records ----------------------------------------------

# Every loss placed among the records (its time: see records.Loss).  The
# time of the instance's first stored record after the loss is one search
# of the records' key per loss, made only when the loss's own time is
# unknown (COALESCE stops at the first value that is not NULL).
PLACED = (
    "(SELECT coalesce(l.first_time_ns,"
    " (SELECT records.time_ns FROM records"
    f" WHERE records.id > ((l.instance_id << {SEQ_BITS}) | l.last_seq)"
    f" AND records.id < ((l.instance_id + 1) << {SEQ_BITS})"
    " ORDER BY records.id LIMIT 1), l.recorded_ns) AS time_ns,"
    " i.uuid AS instance, l.first_seq, l.last_seq, l.count, l.reason, l.first_time_ns,"
    " l.last_time_ns, l.recorded_ns, i.source, l.instance_id, l.id, i.host"
    " FROM losses AS l JOIN instances AS i ON l.instance_id = i.id) AS placed"
)
# A Loss's fields, in its order.
LOSS_COLUMNS = (
    "time_ns, instance, first_seq, last_seq, count, reason, first_time_ns, last_time_ns,"
    " recorded_ns, source"
)


def select_losses(
    sql: Sql,
    since_ns: int | None = None,
    until_ns: int | None = None,
    *,
    record_filter: RecordFilter | None = None,
    scope: Scope | None = None,
    newest_first: bool = False,
) -> str:
    """The SELECT behind losses(): every loss placed within [since_ns, until_ns]
    (both included, None for open), in logged order (time, instance, first
    seq), or newest first.  record_filter and scope add the filter's
    --instance, --source and cursor (a loss shows after the cursor when it
    is placed after the cursor's time: it comes before records of its time)."""
    scope = scope or Scope()
    terms: list[str] = []
    if since_ns is not None:
        terms.append(f"time_ns >= {sql.param(since_ns)}")
    if until_ns is not None:
        terms.append(f"time_ns <= {sql.param(until_ns)}")
    if scope.instance_id is not None:
        terms.append(f"instance_id = {sql.param(scope.instance_id)}")
    if record_filter is not None and record_filter.sources:
        terms.append(f"source IN {sql.among(record_filter.sources)}")
    if record_filter is not None and record_filter.hosts:
        terms.append(f"host IN {sql.among(record_filter.hosts)}")
    if scope.start is not None:
        terms.append(f"time_ns > {sql.param(scope.start[0])}")
    if scope.new_losses is not None:
        low, high = scope.new_losses
        terms.append(f"id > {sql.param(low)} AND id <= {sql.param(high)}")
    statement = f"SELECT {LOSS_COLUMNS} FROM {PLACED}"
    if terms:
        statement += " WHERE " + " AND ".join(terms)
    order = " DESC, ".join(("time_ns", "instance_id", "first_seq")) + " DESC"
    return statement + " ORDER BY " + (order if newest_first else "time_ns, instance_id, first_seq")


def losses(
    reader: Reader, *, since_ns: int | None = None, until_ns: int | None = None
) -> list[Loss]:
    """The losses placed within [since_ns, until_ns], in logged order.

    A loss is placed at the time of its first missing record; when that is
    unknown, just before the instance's first stored record after it; when
    there is none (yet), at the time ingest recorded it (see records.Loss).
    """
    with reader.connect() as reading:
        sql = Sql.on(reading)
        return fetch_losses(reading, select_losses(sql, since_ns, until_ns), sql)


def fetch_losses(reading: Reading, statement: str, sql: Sql) -> list[Loss]:
    """The losses a select_losses() statement finds, each reason a
    LossReason where it is one."""
    return [
        Loss(time_ns, instance, first, last, count, LossReason.of(reason), *rest)
        for time_ns, instance, first, last, count, reason, *rest in reading.execute(
            statement, sql.params
        )
    ]


def found(reader: Reader, record_filter: RecordFilter) -> Generator[Found, None, None]:
    """What `kextlog query` shows: the matching records in logged order, and
    a Loss wherever records are missing, streamed; with reverse, the same
    newest first.

    A loss is shown when its time (records.Loss) lies within --since/--until
    (and after the cursor), and it is of the --instance and --source asked
    for; level, pid, process and grep filters never hide one, since the
    missing records could have been anything.  A loss comes before records
    of the same time.  With lines (-n N) the output is the tail of that
    whole output that starts at the first of the last N records: losses
    before it are left out with the older records (also one at the same
    time, as it comes before that record), and every loss after the last
    record is shown up to until_ns: those records are the newest that match,
    so such a loss may have taken newer ones, which is what someone watching
    the end of the log needs to see.  When N covers every matching record,
    -n changes nothing; -n 0 shows nothing.

    The records come in batches (Records), as a renderer takes them fastest;
    entries() gives them one by one.

    Close the generator (contextlib.closing) before disposing of the reader.
    Errors of the database come out as errors.DatabaseError while iterating.
    """
    with reader.connect() as reading:
        yield from found_in(reading, record_filter, look_up(reading, record_filter))


def entries(reader: Reader, record_filter: RecordFilter) -> Generator[Entry, None, None]:
    """found(), each record on its own (a Record).

    Close the generator (contextlib.closing) before disposing of the reader."""
    with closing(found(reader, record_filter)) as batches:
        yield from one_by_one(batches)


def found_in(reading: Reading, record_filter: RecordFilter, scope: Scope) -> Iterator[Found]:
    since_ns, until_ns = record_filter.since_ns, record_filter.until_ns
    lines, reverse = record_filter.lines, record_filter.reverse
    if lines is None:
        # Losses are few: all of them in the window first, then the records
        # streamed past them.
        sql = Sql.on(reading)
        statement = select_losses(
            sql, since_ns, until_ns, record_filter=record_filter, scope=scope, newest_first=reverse
        )
        lost = fetch_losses(reading, statement, sql)
        sql = Sql.on(reading)
        rows = reading.execute(select_records(record_filter, sql, scope), sql.params)
        yield from merge(batched(rows, InstanceRows(reading)), lost, newest_first=reverse)
        return
    if lines == 0:
        return
    # One more than asked for tells whether -n left records out.
    sql = Sql.on(reading)
    statement = select_records(replace(record_filter, lines=min(lines + 1, INT64_MAX)), sql, scope)
    newest = list(reading.execute(statement, sql.params))
    shown = newest[:lines]
    if not reverse:
        shown.reverse()
    if len(newest) > lines:
        # A loss at the time of the first shown record comes before it, so
        # it goes with the records left out.
        since_ns = newest[lines - 1][0] + 1
    sql = Sql.on(reading)
    statement = select_losses(
        sql, since_ns, until_ns, record_filter=record_filter, scope=scope, newest_first=reverse
    )
    lost = fetch_losses(reading, statement, sql)
    yield from merge(batched(shown, InstanceRows(reading)), lost, newest_first=reverse)


def merge(
    found: Iterable[Records], lost: Sequence[Loss], newest_first: bool = False
) -> Iterator[Found]:
    """Batches of records and losses, both in logged order, into one: a loss
    before the records of its time (newest first: both backwards, a loss
    after them).  A batch is cut where a loss comes between its records."""
    if not lost:  # the common case: no loop of ours per batch
        yield from found
        return
    pending = iter(lost)
    loss = next(pending, None)
    for batch in found:
        rows, start = batch.rows, 0
        while loss is not None and start < len(rows):
            if newest_first:  # after the records of a later time than its own
                end = bisect_right(rows, -loss.time_ns, lo=start, key=_backwards)
            else:  # before the records of its time and later
                end = bisect_left(rows, loss.time_ns, lo=start, key=_time)
            if end == len(rows):
                break
            if end > start:
                yield Records(rows[start:end], batch.instances)
            yield loss
            loss, start = next(pending, None), end
        if start < len(rows):
            yield Records(rows[start:], batch.instances) if start else batch
    if loss is not None:
        yield loss
        yield from pending


def _time(row: Sequence[Any]) -> int:
    return row[0]  # type: ignore[no-any-return]


def _backwards(row: Sequence[Any]) -> int:
    return -row[0]  # type: ignore[no-any-return]


class CursorKeeper:
    """Passes entries through and keeps the cursor of the newest record
    among them (the last in logged order; the first with newest_first),
    for --show-cursor."""

    def __init__(self, found: Iterable[Found], *, newest_first: bool = False) -> None:
        self._found = found
        self._newest_first = newest_first
        self._newest: Record | None = None

    @property
    def cursor(self) -> Cursor | None:
        return None if self._newest is None else Cursor.of(self._newest)

    def __iter__(self) -> Iterator[Found]:
        # The record is kept, its cursor made once at the end: no object per record.
        for entry in self._found:
            if self._newest is None or not self._newest_first:
                if isinstance(entry, Record):
                    self._newest = entry
                elif isinstance(entry, Records) and entry.rows:
                    newest = entry.rows[0 if self._newest_first else -1]
                    self._newest = Record.of_columns(newest, entry.instances)
            yield entry

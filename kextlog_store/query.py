"""The read path: records matching a filter (RecordFilter), in the order
they were logged, with the losses among them.  The filter's SQL is
conditions.py's; following the log as it grows is follow.py's, read-only
SQL sql.py's.

Only what reading needs is imported here (SQLAlchemy Core and the store's
table definitions): never Alembic, cffi or the CLI.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, func, select
from sqlalchemy import exc as sa_exc

from . import callbacks
from .conditions import Scope, look_up, where
from .errors import DatabaseError, UsageError
from .levels import Level
from .records import INT64_MAX, PID_MAX, Cursor, Entry, Loss, LossReason, Record
from .regex import grep_pattern
from .store import schema
from .store.errors import translate

_records = schema.records
_instances = schema.instances
_losses = schema.losses
_LEVELS = {level.value: level for level in Level}


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


def columns(rows: Any) -> tuple[ColumnElement[Any], ...]:
    c = rows.c
    return (
        c.time_ns,
        c.level,
        c.pid,
        c.tid,
        c.process,
        c.message,
        c.seq,
        _instances.c.uuid.label("instance"),
        _instances.c.source,
        c.flags,
        c.syslog_priority,
        c.facility,
        c.fields,
        _instances.c.host,
    )


def select_records(record_filter: RecordFilter, scope: Scope | None = None) -> Select[Any]:
    """The SELECT behind records(): in logged order (time, then the record
    key, that is instance and seq); newest first when only the last N are
    wanted or with reverse.  scope: what the filter's instance, cursors and
    pids name in the store (as entries() looks them up); None when the
    filter names none of them."""
    scope = scope or Scope()
    statement = (
        select(*columns(_records))
        .select_from(_records.join(_instances, _records.c.instance_id == _instances.c.id))
        .where(*where(record_filter, scope))
    )
    logged = (_records.c.time_ns, _records.c.id)
    if record_filter.lines is None and not record_filter.reverse:
        return statement.order_by(*logged)
    newest_first = statement.order_by(*(column.desc() for column in logged))
    return newest_first if record_filter.lines is None else newest_first.limit(record_filter.lines)


def records(engine: Engine, record_filter: RecordFilter) -> Generator[Record, None, None]:
    """The matching records in logged order (time, instance, seq), or newest
    first with reverse, streamed.

    Close the generator (contextlib.closing) before disposing of the engine.
    Errors of the database come out as errors.DatabaseError while iterating.
    """
    hooks = None
    try:
        with engine.connect() as connection:
            hooks = callbacks.prepare(connection)
            statement = select_records(record_filter, look_up(connection, record_filter))
            result = connection.execute(statement)
            if record_filter.lines is None or record_filter.reverse:
                for row in result:
                    yield as_record(row)
            else:
                for row in reversed(result.all()):
                    yield as_record(row)
    except sa_exc.DBAPIError as exc:
        raise callbacks.read_error(exc, hooks) from None


def as_record(row: Sequence[Any]) -> Record:
    """A Record of a row of columns(); DatabaseError for a level no Level has."""
    time_ns, level, pid, tid, process, message, seq, instance, source, *rest = row
    try:
        known = _LEVELS[level]
    except KeyError:
        raise DatabaseError(f"record {instance}:{seq} has an unknown level {level!r}") from None
    return Record(time_ns, known, pid, tid, process, message, seq, instance, source, *rest)


# --- losses among the records ----------------------------------------------

# The time of the instance's first stored record after the loss: one search
# of the records' key per loss, made only when the loss's own time is
# unknown (COALESCE stops at the first value that is not NULL).
_NEXT_RECORD_TIME = (
    select(_records.c.time_ns)
    .where(
        _records.c.id
        > _losses.c.instance_id.op("<<")(schema.SEQ_SHIFT).op("|")(_losses.c.last_seq),
        _records.c.id < (_losses.c.instance_id + 1).op("<<")(schema.SEQ_SHIFT),
    )
    .order_by(_records.c.id)
    .limit(1)
    .correlate(_losses)
    .scalar_subquery()
)
_PLACED = (
    select(
        func.coalesce(_losses.c.first_time_ns, _NEXT_RECORD_TIME, _losses.c.recorded_ns).label(
            "time_ns"
        ),
        _instances.c.uuid.label("instance"),
        _losses.c.first_seq,
        _losses.c.last_seq,
        _losses.c.count,
        _losses.c.reason,
        _losses.c.first_time_ns,
        _losses.c.last_time_ns,
        _losses.c.recorded_ns,
        _instances.c.source,
        _losses.c.instance_id,
        _losses.c.id,
        _instances.c.host,
    )
    .select_from(_losses.join(_instances, _losses.c.instance_id == _instances.c.id))
    .subquery("placed")
)
_LOSS_ORDER = (_PLACED.c.time_ns, _PLACED.c.instance_id, _PLACED.c.first_seq)


def select_losses(
    since_ns: int | None = None,
    until_ns: int | None = None,
    *,
    record_filter: RecordFilter | None = None,
    scope: Scope | None = None,
    newest_first: bool = False,
) -> Select[Any]:
    """The SELECT behind losses(): every loss placed within [since_ns, until_ns]
    (both included, None for open), in logged order (time, instance, first
    seq), or newest first.  record_filter and scope add the filter's
    --instance, --source and cursor (a loss shows after the cursor when it
    is placed after the cursor's time: it comes before records of its time)."""
    scope = scope or Scope()
    terms: list[ColumnElement[bool]] = []
    if since_ns is not None:
        terms.append(_PLACED.c.time_ns >= since_ns)
    if until_ns is not None:
        terms.append(_PLACED.c.time_ns <= until_ns)
    if scope.instance_id is not None:
        terms.append(_PLACED.c.instance_id == scope.instance_id)
    if record_filter is not None and record_filter.sources:
        terms.append(_PLACED.c.source.in_(sorted(set(record_filter.sources))))
    if record_filter is not None and record_filter.hosts:
        terms.append(_PLACED.c.host.in_(sorted(set(record_filter.hosts))))
    if scope.start is not None:
        terms.append(_PLACED.c.time_ns > scope.start[0])
    if scope.new_losses is not None:
        low, high = scope.new_losses
        terms.extend([_PLACED.c.id > low, _PLACED.c.id <= high])
    columns = [c for c in _PLACED.c if c.name not in ("instance_id", "id", "host")]
    order = [column.desc() for column in _LOSS_ORDER] if newest_first else _LOSS_ORDER
    return select(*columns).where(*terms).order_by(*order)


def losses(
    engine: Engine, *, since_ns: int | None = None, until_ns: int | None = None
) -> list[Loss]:
    """The losses placed within [since_ns, until_ns], in logged order.

    A loss is placed at the time of its first missing record; when that is
    unknown, just before the instance's first stored record after it; when
    there is none (yet), at the time ingest recorded it (see records.Loss).
    """
    try:
        with engine.connect() as connection:
            return fetch_losses(connection, select_losses(since_ns, until_ns))
    except sa_exc.DBAPIError as exc:
        raise translate(exc) from None


def fetch_losses(connection: Connection, statement: Select[Any]) -> list[Loss]:
    """The losses a select_losses() statement finds, each reason a
    LossReason where it is one."""
    return [
        Loss(**{**row._mapping, "reason": LossReason.of(row.reason)})
        for row in connection.execute(statement)
    ]


def entries(engine: Engine, record_filter: RecordFilter) -> Generator[Entry, None, None]:
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

    Close the generator (contextlib.closing) before disposing of the engine.
    Errors of the database come out as errors.DatabaseError while iterating.
    """
    hooks = None
    try:
        with engine.connect() as connection:
            hooks = callbacks.prepare(connection)
            yield from entries_in(connection, record_filter, look_up(connection, record_filter))
    except sa_exc.DBAPIError as exc:
        raise callbacks.read_error(exc, hooks) from None


def entries_in(
    connection: Connection, record_filter: RecordFilter, scope: Scope
) -> Iterator[Entry]:
    since_ns, until_ns = record_filter.since_ns, record_filter.until_ns
    lines, reverse = record_filter.lines, record_filter.reverse
    if lines is None:
        # Losses are few: all of them in the window first, then the records
        # streamed past them.
        found = fetch_losses(
            connection,
            select_losses(
                since_ns,
                until_ns,
                record_filter=record_filter,
                scope=scope,
                newest_first=reverse,
            ),
        )
        rows = connection.execute(select_records(record_filter, scope))
        yield from merge((as_record(row) for row in rows), found, newest_first=reverse)
        return
    if lines == 0:
        return
    # One more than asked for tells whether -n left records out.
    newest = connection.execute(
        select_records(replace(record_filter, lines=min(lines + 1, INT64_MAX)), scope)
    ).all()
    shown = [as_record(row) for row in reversed(newest[:lines])]
    if len(newest) > lines:
        # A loss at the time of the first shown record comes before it, so
        # it goes with the records left out.
        since_ns = shown[0].time_ns + 1
    lost = fetch_losses(
        connection, select_losses(since_ns, until_ns, record_filter=record_filter, scope=scope)
    )
    if reverse:
        yield from reversed(list(merge(shown, lost)))
    else:
        yield from merge(shown, lost)


def merge(
    found: Iterable[Record], lost: Sequence[Loss], newest_first: bool = False
) -> Iterator[Entry]:
    """Records and losses, both in logged order, into one: a loss before the
    records of its time (newest first: both backwards, a loss after them)."""
    pending = iter(lost)
    loss = next(pending, None)
    for record in found:
        while loss is not None and (
            loss.time_ns > record.time_ns if newest_first else loss.time_ns <= record.time_ns
        ):
            yield loss
            loss = next(pending, None)
        yield record
    if loss is not None:
        yield loss
        yield from pending


class CursorKeeper:
    """Passes entries through and keeps the cursor of the newest record
    among them (the last in logged order; the first with newest_first),
    for --show-cursor."""

    def __init__(self, found: Iterable[Entry], *, newest_first: bool = False) -> None:
        self._found = found
        self._newest_first = newest_first
        self.cursor: Cursor | None = None

    def __iter__(self) -> Iterator[Entry]:
        for entry in self._found:
            if isinstance(entry, Record) and (self.cursor is None or not self._newest_first):
                self.cursor = Cursor.of(entry)
            yield entry

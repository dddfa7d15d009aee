"""The read path: records matching a filter, in the order they were logged,
with the losses among them; following the log as it grows; and read-only
SQL for `kextlog sql`.

Only what reading needs is imported here (SQLAlchemy Core and the store's
table definitions): never Alembic, cffi or the CLI.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy import text as sql_text
from sqlalchemy.ext.compiler import compiles

from . import regex, store
from .errors import DatabaseError, KextlogError, ReadOnlyError, UsageError
from .levels import Level
from .records import Cursor, Entry, Loss, Record

# --- records --------------------------------------------------------------

INT64_MAX = 2**63 - 1  # SQLite's integers, PostgreSQL's bigint
PID_MAX = 2**31 - 1  # pid_t


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


def grep_pattern(pattern: str) -> str:
    """The regular expression --grep searches with: the pattern itself when it
    has an upper-case letter, else the pattern made case-insensitive.
    Raises UsageError for a pattern RE2 does not take (regex.compile)."""
    try:
        regex.compile(pattern)
    except UsageError as exc:
        raise UsageError(f"--grep: {exc}") from None
    escaped = False
    for char in pattern:
        if char.isupper() and not escaped:
            return pattern
        escaped = char == "\\" and not escaped
    return "(?i)" + pattern


# How often SQLite calls back while a statement runs, in virtual machine
# instructions: a few thousand a millisecond, so a time limit or a Ctrl-C
# is seen within a millisecond or so.
PROGRESS_INSTRUCTIONS = 1_000


class _Callbacks:
    """A read connection's Python callbacks, and what went wrong in them.

    SQLite turns an exception raised in a callback into an error of its own
    ("user-defined function raised exception", "interrupted") and drops
    it; this remembers it, so that the error can be told for what it was.
    A Ctrl-C (KeyboardInterrupt) arrives in whatever Python code runs, and
    while a statement runs that is mostly a callback: the progress handler
    then stops the statement, and the error becomes a KeyboardInterrupt
    again.  deadline: time.monotonic() past which the statement stops."""

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self.interrupted = False
        self.refused: UsageError | None = None  # a REGEXP pattern RE2 does not take

    def regexp(self, pattern: str | None, value: Any) -> bool | None:
        """SQLite's `X REGEXP Y` calls regexp(Y, X): a search (regex.compile)."""
        try:
            if pattern is None or value is None:
                return None
            text = value if isinstance(value, bytes) else str(value).encode()
            return regex.compile(pattern).search(text)
        except UsageError as exc:
            self.refused = exc
            raise
        except KeyboardInterrupt:
            self.interrupted = True
            raise

    def progress(self) -> int:
        """Non-zero stops the statement: at the deadline, or after a Ctrl-C."""
        try:
            return int(self.interrupted or self.timed_out())
        except KeyboardInterrupt:
            self.interrupted = True
            return 1

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def failure(self, exc: BaseException) -> BaseException | None:
        """What a driver error really was when a callback caused it: the
        KeyboardInterrupt of a Ctrl-C, or the UsageError of a REGEXP
        pattern; None when it was something else."""
        message = str(exc)
        from_callback = message in ("interrupted", "user-defined function raised exception")
        if self.interrupted or (from_callback and self.refused is None and not self.timed_out()):
            # A KeyboardInterrupt raised as a callback starts is dropped
            # before this one could see it: nothing else stops a statement so.
            return KeyboardInterrupt()
        if self.refused is not None and from_callback:
            return UsageError(f"SQL: REGEXP: {self.refused}")
        return None

    def attach(self, connection: sqlite3.Connection) -> None:
        """REGEXP (RE2's) and the progress handler, on a connection that reads."""
        connection.create_function("regexp", 2, self.regexp, deterministic=True)
        connection.set_progress_handler(self.progress, PROGRESS_INSTRUCTIONS)


def _prepare(connection: Connection) -> _Callbacks | None:
    """The callbacks of a read connection (SQLite's; PostgreSQL has its own ~)."""
    driver = connection.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):
        return None
    callbacks = _Callbacks()
    callbacks.attach(driver)
    return callbacks


def _read_error(exc: sa_exc.DBAPIError, callbacks: _Callbacks | None) -> BaseException:
    """A driver error of reading as kextlog reports it."""
    cause = exc.orig if exc.orig is not None else exc
    found = callbacks.failure(cause) if callbacks is not None else None
    return found if found is not None else database_error(cause)


_records = store.records
_instances = store.instances
_pid_index = store.pid_index
_losses = store.losses
_LEVELS = {level.value: level for level in Level}
_GLOB = re.compile(r"[*?\[]")
_OFFSET = re.compile(r"0|-[1-9][0-9]*")
_HEX = re.compile(r"[0-9a-f]+")


class _Match(ColumnElement[bool]):
    """value matches a pattern, written for each back end: SQLite's GLOB or
    REGEXP (RE2's, see _Callbacks) with the pattern as it is; PostgreSQL's
    ~ with the same pattern as a POSIX regular expression."""

    type = Boolean()
    inherit_cache = False  # the SQL depends on the patterns, not only on the structure

    def __init__(
        self, value: ColumnElement[Any], operator: str, pattern: str, postgresql_pattern: str
    ) -> None:
        self.value = value
        self.operator = operator
        self.pattern = pattern
        self.postgresql_pattern = postgresql_pattern


@compiles(_Match)
def _match_sql(element: _Match, compiler: Any, **kw: Any) -> str:
    value, pattern = element.value, literal(element.pattern)
    return f"{compiler.process(value, **kw)} {element.operator} {compiler.process(pattern, **kw)}"


@compiles(_Match, "postgresql")
def _match_postgresql(element: _Match, compiler: Any, **kw: Any) -> str:
    value, pattern = element.value, literal(element.postgresql_pattern)
    return f"{compiler.process(value, **kw)} ~ {compiler.process(pattern, **kw)}"


def _glob(value: ColumnElement[Any], glob: str) -> _Match:
    """value GLOB glob, as SQLite matches it: case-sensitive, * ? [...] [^...]."""
    return _Match(value, "GLOB", glob, glob_regex(glob))


def _grep(value: ColumnElement[Any], pattern: str) -> _Match:
    """value REGEXP pattern (RE2's syntax: a search)."""
    return _Match(value, "REGEXP", pattern, postgresql_regex(pattern))


# RE2's escapes that PostgreSQL's regular expressions write otherwise
# (there \b is a backspace): word boundaries, the end of the text.
_PG_ESCAPES = {"b": "y", "B": "Y", "z": "Z"}
_NAMED_GROUP = re.compile(r"\(\?P?<[^>]*>")


def postgresql_regex(pattern: str) -> str:
    r"""An RE2 regular expression (as --grep takes it) as PostgreSQL's
    (ARE): the same syntax but for word boundaries (\b \B there: \y \Y),
    the end of the text (\z there: \Z) and named groups ((?P<name>...) and
    (?<name>...) are plain groups there)."""
    parts, index, in_class = [], 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            parts.append("\\" + (escaped if in_class else _PG_ESCAPES.get(escaped, escaped)))
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif named := _NAMED_GROUP.match(pattern, index):
            index = named.end()
            parts.append("(")
            continue
        parts.append(char)
        index += 1
    return "".join(parts)


def glob_regex(glob: str) -> str:
    """A glob as an anchored regular expression (POSIX and Python alike)."""
    parts, index = ["^"], 0
    while index < len(glob):
        char = glob[index]
        end = glob.find("]", index + 2) if char == "[" else -1
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "[" and end != -1:
            body = glob[index + 1 : end]
            negated = body.startswith("^")
            body = body[1:] if negated else body
            parts.append("[" + "^" * negated + body.replace("\\", "\\\\") + "]")
            index = end
        else:
            parts.append(re.escape(char))
        index += 1
    return "".join(parts) + "$"


def _first_id(instance_id: int) -> int:
    """The lowest record id of an instance: the key packs (instance, seq)
    (store.record_id), so an instance's records are one rowid range, in
    seq order, and (time_ns, id) is logged order."""
    return store.record_id(instance_id, 0)


def _of_instance(ids: ColumnElement[Any], instance_id: int) -> ColumnElement[bool]:
    return and_(ids >= _first_id(instance_id), ids < _first_id(instance_id + 1))


@dataclass(frozen=True)
class _Scope:
    """What a filter names, looked up in the store.

    instance_id: the --instance row (None: all).  start: the cursor's place
    in logged order, (time_ns, record id), and whether it is included.
    unindexed: per instance, the record ids (low, high) past what ingest
    has merged into pid_index yet, which a pid search scans.  new_records /
    new_losses: the id windows (low, high] one poll of --follow reads.
    """

    instance_id: int | None = None
    start: tuple[int, int] | None = None
    start_included: bool = True
    unindexed: tuple[tuple[int, int], ...] = ()
    new_records: tuple[tuple[int, int], ...] | None = None
    new_losses: tuple[int, int] | None = None


def _scope(connection: Connection, record_filter: RecordFilter) -> _Scope:
    instance_id = None
    if record_filter.instance is not None:
        instance_id = _resolve_instance(connection, record_filter.instance, record_filter)
    start, included = None, True
    cursor = record_filter.cursor or record_filter.after_cursor
    if cursor is not None:
        option = "--cursor" if record_filter.cursor is not None else "--after-cursor"
        row_id = connection.execute(
            select(_instances.c.id).where(_instances.c.uuid == cursor.instance)
        ).scalar()
        if row_id is None:
            raise UsageError(f"{option}: instance {cursor.instance} is not in this store")
        if (
            not 0 <= cursor.seq <= store.SEQ_MASK
            or not -INT64_MAX - 1 <= cursor.time_ns <= INT64_MAX
        ):
            raise UsageError(f"{option}: {cursor} is out of range: not a record's cursor")
        start = (cursor.time_ns, store.record_id(row_id, cursor.seq))
        included = record_filter.cursor is not None
    unindexed: tuple[tuple[int, int], ...] = ()
    if record_filter.pids:
        # pid_indexed_seq only grows, so a range read now may be wider than
        # it is by the time the records are read, never narrower: a record
        # in both is still matched once.
        rows = connection.execute(select(_instances.c.id, _instances.c.pid_indexed_seq))
        unindexed = tuple(
            (store.record_id(row_id, indexed), _first_id(row_id + 1)) for row_id, indexed in rows
        )
    return _Scope(instance_id, start, included, unindexed)


def _among(record_filter: RecordFilter) -> list[ColumnElement[bool]]:
    """The instances a filter's --source and --host narrow to."""
    terms = []
    if record_filter.sources:
        terms.append(_instances.c.source.in_(sorted(set(record_filter.sources))))
    if record_filter.hosts:
        terms.append(_instances.c.host.in_(sorted(set(record_filter.hosts))))
    return terms


def _resolve_instance(connection: Connection, spec: str, record_filter: RecordFilter) -> int:
    text = spec.strip().lower()
    among = _among(record_filter)
    if _OFFSET.fullmatch(text):
        ordered = (
            select(_instances.c.id)
            .where(*among)
            .order_by(_instances.c.first_seen_ns.desc(), _instances.c.id.desc())
        )
        offset = -int(text)
        found = None
        if offset <= INT64_MAX:  # no store has more instances
            found = connection.execute(ordered.offset(offset).limit(1)).scalar()
        if found is None:
            known = connection.execute(
                select(func.count()).select_from(ordered.subquery())
            ).scalar_one()
            narrowed = " of those sources and hosts" if among else ""
            raise UsageError(
                f"--instance {text}: the store has {known} instance{'s' * (known != 1)}{narrowed}"
            )
        return int(found)
    digits = text.replace("-", "")
    if not _HEX.fullmatch(digits):
        raise UsageError(
            f"--instance: {spec!r} is not an instance id, a prefix of one, "
            "0 (the newest) or -N (the Nth before it)"
        )
    matches = connection.execute(
        select(_instances.c.id)
        .where(func.substr(_instances.c.uuid, 1, len(digits)) == digits, *among)
        .limit(2)
    ).all()
    if not matches:
        raise UsageError(f"--instance: no instance {spec!r} in this store")
    if len(matches) > 1:
        raise UsageError(f"--instance: {spec!r} matches several instances; give more digits")
    return int(matches[0][0])


def _conditions(
    record_filter: RecordFilter, scope: _Scope, rows: Any = _records
) -> list[ColumnElement[bool]]:
    """The WHERE terms of a filter on rows: the records table, or (--follow)
    a few new rows of it, which no index needs to find."""
    c = rows.c
    indexed = rows is _records
    terms: list[ColumnElement[bool]] = []
    if record_filter.levels is not None:
        low, high = record_filter.levels
        if (low, high) != (min(Level), max(Level)):  # all levels: no term
            wanted = [int(level) for level in Level if low <= level <= high]
            terms.append(c.level == wanted[0] if len(wanted) == 1 else c.level.in_(wanted))
            if indexed and low >= Level.WARNING:
                # The level index holds only these levels (level >= 4); SQLite
                # uses a partial index only for a query that says so itself.
                terms.append(c.level >= int(Level.WARNING))
    if record_filter.since_ns is not None:
        terms.append(c.time_ns >= record_filter.since_ns)
    if record_filter.until_ns is not None:
        terms.append(c.time_ns <= record_filter.until_ns)
    if record_filter.pids:
        pids = sorted(set(record_filter.pids))
        terms.append(c.pid.in_(pids))
        if indexed:
            # Where to look: pid_index (bounded by the window, as its key is
            # pid, time_ns, id), and the records ingest has not merged yet.
            window: list[ColumnElement[bool]] = [_pid_index.c.pid.in_(pids)]
            if record_filter.since_ns is not None:
                window.append(_pid_index.c.time_ns >= record_filter.since_ns)
            if record_filter.until_ns is not None:
                window.append(_pid_index.c.time_ns <= record_filter.until_ns)
            terms.append(
                or_(
                    c.id.in_(select(_pid_index.c.id).where(*window)),
                    *(and_(c.id > low, c.id < high) for low, high in scope.unindexed),
                )
            )
    if record_filter.processes:
        exact = sorted({name for name in record_filter.processes if not _GLOB.search(name)})
        globs = sorted({name for name in record_filter.processes if _GLOB.search(name)})
        alternatives: list[ColumnElement[bool]] = [_glob(c.process, glob) for glob in globs]
        if exact:
            alternatives.append(c.process.in_(exact))
        terms.append(or_(*alternatives))
    if record_filter.grep is not None:
        terms.append(_grep(c.message, grep_pattern(record_filter.grep)))
    if scope.instance_id is not None:
        terms.append(_of_instance(c.id, scope.instance_id))
    terms.extend(_among(record_filter))
    if scope.start is not None:
        time_ns, record_id = scope.start
        at = c.id >= record_id if scope.start_included else c.id > record_id
        # The first term alone lets SQLite search the time index.
        terms.append(c.time_ns >= time_ns)
        terms.append(or_(c.time_ns > time_ns, at))
    return terms


def _columns(rows: Any) -> tuple[ColumnElement[Any], ...]:
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
    )


def select_records(record_filter: RecordFilter, scope: _Scope | None = None) -> Select[Any]:
    """The SELECT behind records(): in logged order (time, then the record
    key, that is instance and seq); newest first when only the last N are
    wanted or with reverse.  scope: what the filter's instance, cursors and
    pids name in the store (as entries() looks them up); None when the
    filter names none of them."""
    scope = scope or _Scope()
    statement = (
        select(*_columns(_records))
        .select_from(_records.join(_instances, _records.c.instance_id == _instances.c.id))
        .where(*_conditions(record_filter, scope))
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
    callbacks = None
    try:
        with engine.connect() as connection:
            callbacks = _prepare(connection)
            statement = select_records(record_filter, _scope(connection, record_filter))
            result = connection.execute(statement)
            if record_filter.lines is None or record_filter.reverse:
                for row in result:
                    yield _record(row)
            else:
                for row in reversed(result.all()):
                    yield _record(row)
    except sa_exc.DBAPIError as exc:
        raise _read_error(exc, callbacks) from None


def _record(row: Sequence[Any]) -> Record:
    time_ns, level, pid, tid, process, message, seq, instance, source, *rest = row
    try:
        known = _LEVELS[level]
    except KeyError:
        raise DatabaseError(f"record {instance}:{seq} has an unknown level {level!r}") from None
    return Record(time_ns, known, pid, tid, process, message, seq, instance, source, *rest)


# PostgreSQL: undefined_table, undefined_column.
_UNDEFINED = frozenset({"42P01", "42703"})


def database_error(exc: BaseException) -> DatabaseError:
    """A driver error as a one-line DatabaseError, saying when the file is not a
    kextlog store."""
    message = _one_line(str(exc))
    missing = getattr(exc, "sqlstate", None) in _UNDEFINED  # PostgreSQL's error codes
    if missing or "no such table" in message or "no such column" in message:
        return DatabaseError(
            f"not a kextlog database, or an older schema ({message}); run `kextlog db upgrade`"
        )
    return DatabaseError(message)


# --- losses among the records ----------------------------------------------

# The time of the instance's first stored record after the loss: one search
# of the records' key per loss, made only when the loss's own time is
# unknown (COALESCE stops at the first value that is not NULL).
_NEXT_RECORD_TIME = (
    select(_records.c.time_ns)
    .where(
        _records.c.id > _losses.c.instance_id.op("<<")(store.SEQ_SHIFT).op("|")(_losses.c.last_seq),
        _records.c.id < (_losses.c.instance_id + 1).op("<<")(store.SEQ_SHIFT),
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
    scope: _Scope | None = None,
    newest_first: bool = False,
) -> Select[Any]:
    """The SELECT behind losses(): every loss placed within [since_ns, until_ns]
    (both included, None for open), in logged order (time, instance, first
    seq), or newest first.  record_filter and scope add the filter's
    --instance, --source and cursor (a loss shows after the cursor when it
    is placed after the cursor's time: it comes before records of its time)."""
    scope = scope or _Scope()
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
            return _fetch_losses(connection, select_losses(since_ns, until_ns))
    except sa_exc.DBAPIError as exc:
        raise database_error(exc.orig if exc.orig is not None else exc) from None


def _fetch_losses(connection: Connection, statement: Select[Any]) -> list[Loss]:
    return [Loss(**row._mapping) for row in connection.execute(statement)]


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
    callbacks = None
    try:
        with engine.connect() as connection:
            callbacks = _prepare(connection)
            yield from _entries(connection, record_filter, _scope(connection, record_filter))
    except sa_exc.DBAPIError as exc:
        raise _read_error(exc, callbacks) from None


def _entries(connection: Connection, record_filter: RecordFilter, scope: _Scope) -> Iterator[Entry]:
    since_ns, until_ns = record_filter.since_ns, record_filter.until_ns
    lines, reverse = record_filter.lines, record_filter.reverse
    if lines is None:
        # Losses are few: all of them in the window first, then the records
        # streamed past them.
        found = _fetch_losses(
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
        yield from _merge((_record(row) for row in rows), found, newest_first=reverse)
        return
    if lines == 0:
        return
    # One more than asked for tells whether -n left records out.
    newest = connection.execute(
        select_records(replace(record_filter, lines=min(lines + 1, INT64_MAX)), scope)
    ).all()
    shown = [_record(row) for row in reversed(newest[:lines])]
    if len(newest) > lines:
        # A loss at the time of the first shown record comes before it, so
        # it goes with the records left out.
        since_ns = shown[0].time_ns + 1
    lost = _fetch_losses(
        connection, select_losses(since_ns, until_ns, record_filter=record_filter, scope=scope)
    )
    if reverse:
        yield from reversed(list(_merge(shown, lost)))
    else:
        yield from _merge(shown, lost)


def _merge(
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


# --- following the log ----------------------------------------------------

FOLLOW_LINES = 10  # what --follow shows first without -n, as journalctl -f
POLL_SECONDS = 0.2  # how often --follow looks for new rows: one rowid search each


def follow(
    engine: Engine,
    record_filter: RecordFilter,
    *,
    poll_seconds: float = POLL_SECONDS,
    stop: threading.Event | None = None,
) -> Generator[Entry, None, None]:
    """entries(), then every matching record and loss as ingest commits it,
    until stop is set or the caller stops iterating (the CLI: Ctrl-C, that
    is KeyboardInterrupt).

    Without lines it starts with the last FOLLOW_LINES records, unless
    since_ns or a cursor says where to start (as journalctl -f).  The first
    output and the ids it ends at are read in one snapshot; then each poll
    reads every instance's highest record id (one search of the key each)
    and the highest loss id, and fetches only the rows above what it has
    seen: a poll costs the same at any size of store, and no read
    transaction stays open while it waits.  Records of one poll come in
    logged order; a record that arrives later with an earlier time (another
    instance's, or a replay) is shown when it arrives.
    """
    if record_filter.reverse:
        raise UsageError("--follow shows the newest records last: it cannot be --reverse")
    if record_filter.until_ns is not None:
        raise UsageError("--follow shows records as they arrive: it cannot have --until")
    lines = record_filter.lines
    starts = (record_filter.since_ns, record_filter.cursor, record_filter.after_cursor)
    if lines is None and all(value is None for value in starts):
        lines = FOLLOW_LINES
    callbacks = None
    try:
        with engine.connect() as connection:
            callbacks = _prepare(connection)
            scope = _scope(connection, record_filter)
            if connection.dialect.name == "sqlite":
                # One snapshot for the first output and its end (PostgreSQL:
                # the read engine's transactions are REPEATABLE READ).
                connection.exec_driver_sql("BEGIN")
            seen = _newest_ids(connection)
            yield from _entries(connection, replace(record_filter, lines=lines), scope)
            connection.rollback()
            later = replace(record_filter, lines=None)
            stop = stop or threading.Event()
            while not stop.wait(poll_seconds):
                newest = _newest_ids(connection)
                if newest != seen:
                    windows = tuple(
                        (seen[0].get(instance, _first_id(instance)), last)
                        for instance, last in newest[0].items()
                        if last > seen[0].get(instance, _first_id(instance))
                    )
                    window = replace(scope, new_records=windows, new_losses=(seen[1], newest[1]))
                    yield from _new_entries(connection, later, window)
                    seen = newest
                connection.rollback()  # no read transaction while waiting
    except sa_exc.DBAPIError as exc:
        raise _read_error(exc, callbacks) from None


def _newest_ids(connection: Connection) -> tuple[dict[int, int], int]:
    """Each instance's highest record id (its first id when it has none) and
    the highest loss id."""
    records = _records.alias("r")
    newest = (
        select(func.max(records.c.id))
        .where(
            records.c.id >= _instances.c.id.op("<<")(store.SEQ_SHIFT),
            records.c.id < (_instances.c.id + 1).op("<<")(store.SEQ_SHIFT),
        )
        .correlate(_instances)
        .scalar_subquery()
    )
    by_instance = {
        int(instance): int(last) if last is not None else _first_id(instance)
        for instance, last in connection.execute(select(_instances.c.id, newest))
    }
    last_loss = connection.execute(select(func.coalesce(func.max(_losses.c.id), 0))).scalar_one()
    return by_instance, int(last_loss)


def _new_entries(
    connection: Connection, record_filter: RecordFilter, scope: _Scope
) -> Iterator[Entry]:
    """The rows of one poll, in logged order.  The new records are taken
    apart first (a materialized CTE, found by their ids alone), so that no
    index of the filter's columns tempts SQLite into scanning the store."""
    lost = _fetch_losses(
        connection,
        select_losses(record_filter.since_ns, None, record_filter=record_filter, scope=scope),
    )
    windows = scope.new_records or ()
    if not windows:
        yield from lost
        return
    wanted = ("id", "instance_id", "seq", "time_ns", "level", "flags", "pid", "tid", "process",
              "message", "syslog_priority", "facility", "fields")  # fmt: skip
    new = (
        select(*(_records.c[name] for name in wanted))
        .where(or_(*(and_(_records.c.id > low, _records.c.id <= high) for low, high in windows)))
        .cte("new")
        .prefix_with("MATERIALIZED")
    )
    statement = (
        select(*_columns(new))
        .select_from(new.join(_instances, new.c.instance_id == _instances.c.id))
        .where(*_conditions(record_filter, scope, new))
        .order_by(new.c.time_ns, new.c.id)
    )
    rows = connection.execute(statement)
    yield from _merge((_record(row) for row in rows), lost)


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


# --- read-only SQL --------------------------------------------------------


class SqlResult(NamedTuple):
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    # The limit that cut the result short ("--max-rows", "--max-bytes"):
    # only the rows before it are here.  None: every row is.
    truncated: str | None = None


def sql_parameters(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`-p NAME VALUE` pairs as the named parameters of a statement (:NAME).

    A value that is an integer written the one way Python and SQLite write
    it (312, -1; not 0012 or +1) is passed as that integer, so that
    `count(*) > :n` and `LIMIT :n` work (SQLite orders any text after every
    number); anything else as text.  Compared with a TEXT column, SQLite
    turns such an integer back into the very same text, so a parameter
    matches the same text either way.
    """
    values: dict[str, Any] = {}
    for name, value in pairs:
        key = name.removeprefix(":")
        if not key.isidentifier():
            raise UsageError(f"-p: {name!r} is not a parameter name (letters, digits and _)")
        if key in values:
            raise UsageError(f"-p: parameter {key!r} is given twice")
        values[key] = _integer_or_text(key, value)
    return values


def _integer_or_text(name: str, value: str) -> int | str:
    try:
        number = int(value)
    except ValueError:
        return value
    if str(number) != value:
        return value
    if not -INT64_MAX - 1 <= number <= INT64_MAX:
        raise UsageError(f"-p {name}: {value} is beyond SQL's 64-bit integers")
    return number


# Pragmas that only report, and may take a table or index name as argument.
_PRAGMAS_NAMING = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
     "foreign_key_list"}
)  # fmt: skip
# Pragmas that may be read (never set: a value is denied).  Not here, because
# they act even without a value: incremental_vacuum, wal_checkpoint, optimize,
# shrink_memory.
_PRAGMAS_READABLE = _PRAGMAS_NAMING | frozenset(
    {"database_list", "collation_list", "function_list", "module_list", "pragma_list",
     "compile_options", "user_version", "application_id", "schema_version", "data_version",
     "page_count", "page_size", "freelist_count", "max_page_count", "auto_vacuum",
     "journal_mode", "encoding", "foreign_keys", "query_only", "busy_timeout", "cache_size",
     "synchronous", "temp_store", "integrity_check", "quick_check", "foreign_key_check"}
)  # fmt: skip
# Functions that reach outside the database (most are absent or disabled
# anyway; the authorizer makes sure).
_FUNCTIONS_DENIED = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
# Primary result codes (sqlite3 names them only from Python 3.11 on).
_SQLITE_ERROR = 1
_SQLITE_READONLY = 8
_SQLITE_TOOBIG = 18
_SCHEMA_TABLES = frozenset(
    {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}
)
_ACTIONS = (
    "INSERT", "UPDATE", "DELETE", "CREATE_TABLE", "CREATE_INDEX", "CREATE_VIEW",
    "CREATE_TRIGGER", "CREATE_TEMP_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_VIEW",
    "CREATE_TEMP_TRIGGER", "CREATE_VTABLE", "DROP_TABLE", "DROP_INDEX", "DROP_VIEW",
    "DROP_TRIGGER", "DROP_TEMP_TABLE", "DROP_TEMP_INDEX", "DROP_TEMP_VIEW", "DROP_TEMP_TRIGGER",
    "DROP_VTABLE", "ALTER_TABLE", "ANALYZE", "REINDEX", "ATTACH", "DETACH", "TRANSACTION",
    "SAVEPOINT", "PRAGMA",
)  # fmt: skip
_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ")
    for name in _ACTIONS
    if hasattr(sqlite3, f"SQLITE_{name}")
}


class _ReadOnlyGuard:
    """sqlite3 authorizer: allows reading and nothing else, and remembers
    what it denied so the error can say so."""

    def __init__(self) -> None:
        self.first_action: int | None = None
        self.denied: str | None = None

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _inner: str | None
    ) -> int:
        if self.first_action is None:
            self.first_action = action
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            if (arg2 or "").lower() not in _FUNCTIONS_DENIED:
                return sqlite3.SQLITE_OK
            return self._deny(f"calling {arg2}()")
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name in _PRAGMAS_NAMING or (name in _PRAGMAS_READABLE and arg2 is None):
                return sqlite3.SQLITE_OK
            return self._deny(f"PRAGMA {name}" + (f" = {arg2}" if arg2 is not None else ""))
        if (
            action == sqlite3.SQLITE_UPDATE
            and arg1 in _SCHEMA_TABLES
            and self.first_action == sqlite3.SQLITE_SELECT
        ):
            # Within a SELECT, SQLite itself declares an eponymous virtual
            # table (json_each, pragma_table_info, ...) this way; nothing is
            # written, and SQLite never lets a statement change these tables.
            return sqlite3.SQLITE_OK
        return self._deny(_describe(action, arg1, arg2))

    def _deny(self, what: str) -> int:
        if self.denied is None:
            self.denied = what
        return sqlite3.SQLITE_DENY


def _describe(action: int, arg1: str | None, arg2: str | None) -> str:
    """What a denied action would have done, for the error message."""
    if action == sqlite3.SQLITE_ATTACH:
        return "attaching a database file (ATTACH, VACUUM)"
    if arg1 in _SCHEMA_TABLES:  # CREATE and DROP first change the schema table
        if "temp" in arg1:
            return "creating or dropping temporary tables, views or triggers"
        return "changing the schema (CREATE, DROP)"
    what = _ACTION_NAMES.get(action, f"operation {action}")
    if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE):
        return f"{what} on table {arg1}"
    if action == sqlite3.SQLITE_ALTER_TABLE:
        return f"{what} {arg2}"
    return f"{what} {arg1}" if arg1 else what


# The limits of run_sql's arguments (and of `kextlog sql`'s options): a
# day is longer than any statement one waits for, and PostgreSQL's
# statement_timeout (int milliseconds) holds it; SQLite counts rows and
# bytes in 64 bits.
MAX_TIME_LIMIT = 86_400.0
# SQLite's own memory for a statement besides its values (page cache,
# sorter, the statement itself): the heap limit is twice max_bytes and this.
_HEAP_MARGIN = 64 << 20


def run_sql(
    url: str,
    sql: str,
    params: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    time_limit: float | None = None,
    max_rows: int | None = None,
    max_bytes: int | None = None,
) -> SqlResult:
    """Run one SQL statement that only reads; return column names and rows.

    Read-only is enforced by the database, never by looking at the SQL.
    SQLite: the file is opened with mode=ro, query_only is on, no database
    can be attached (which also stops VACUUM INTO), and an authorizer allows
    only reading; REGEXP works (RE2's, see regex).  PostgreSQL: a READ ONLY
    transaction (_run_postgresql).  Anything else raises ReadOnlyError; a bad
    statement UsageError; time_limit (seconds) interrupts a statement that
    runs longer (DatabaseError, and no rows: a partial result of an
    unfinished statement means nothing).  max_rows keeps the first max_rows
    rows, max_bytes the first rows whose values (text and blobs) take at
    most max_bytes; SqlResult.truncated says which cut the result short.
    None or 0: no limit.  On SQLite max_bytes also bounds any one value the
    statement builds (a longer one is a DatabaseError) and SQLite's memory
    (about twice max_bytes).
    """
    if not sql.strip():
        raise UsageError("SQL: no SQL statement given")
    if max_rows is not None and not 0 <= max_rows <= INT64_MAX:
        raise UsageError(f"--max-rows must be from 0 to {INT64_MAX}, not {max_rows}")
    if max_bytes is not None and not 0 <= max_bytes <= INT64_MAX:
        raise UsageError(f"--max-bytes must be from 0 to {INT64_MAX}, not {max_bytes}")
    if time_limit is not None and not 0 < time_limit <= MAX_TIME_LIMIT:
        raise UsageError(
            f"--timeout must be more than 0 and at most {MAX_TIME_LIMIT:g} seconds,"
            f" not {time_limit:g}"
        )
    limits = _Limits(time_limit, max_rows or None, max_bytes or None)
    path = store.sqlite_path(url)
    if path is None:
        return _run_postgresql(url, sql, params, limits)
    engine = store.read_engine(url)
    try:
        fairy = engine.raw_connection()
        try:
            connection = fairy.driver_connection
            assert isinstance(connection, sqlite3.Connection)
            try:
                return _run_guarded(connection, sql, params, limits)
            except sqlite3.DatabaseError as exc:  # only a damaged file comes out as it is
                raise store.damaged(path, exc) from None
        finally:
            # Closed, not pooled: the guard stays with this connection to the end.
            fairy.invalidate()
    except sqlite3.Error as exc:  # opening failed, e.g. not a database
        raise database_error(exc) from None
    except sa_exc.DBAPIError as exc:
        raise database_error(exc.orig if exc.orig is not None else exc) from None
    finally:
        engine.dispose()


def _printed_size(value: Any) -> int:
    """About what a value takes printed: a blob in hex, text as it is."""
    if isinstance(value, bytes):
        return 2 * len(value) + 3
    return len(value) if isinstance(value, str) else 20


def time_limit_error(time_limit: float) -> DatabaseError:
    """The error of a statement stopped at its time limit."""
    return DatabaseError(f"SQL stopped after the time limit of {time_limit:g} s: raise --timeout")


class _Limits(NamedTuple):
    time_limit: float | None
    max_rows: int | None
    max_bytes: int | None

    def take(self, rows: Iterable[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], str | None]:
        """The first rows within max_rows and max_bytes, and the option that
        cut them short (None: all of them).  The row after the last kept
        one is read to know; none after it is computed."""
        kept: list[tuple[Any, ...]] = []
        size = 0
        for row in rows:
            if self.max_rows is not None and len(kept) == self.max_rows:
                return kept, "--max-rows"
            if self.max_bytes is not None:
                size += sum(map(_printed_size, row))
                if size > self.max_bytes:
                    return kept, "--max-bytes"
            kept.append(row)
        return kept, None

    def too_long(self) -> DatabaseError:
        assert self.time_limit is not None
        return time_limit_error(self.time_limit)

    def too_big(self) -> DatabaseError:
        return DatabaseError(
            f"SQL: the statement needs more than --max-bytes ({self.max_bytes:,} bytes) for a"
            " value or its work: raise --max-bytes (0 for no limit)"
        )


# PostgreSQL's error codes: read_only_sql_transaction, query_canceled; and
# the classes of a statement's own mistakes: data exception, syntax error or
# access rule violation, feature not supported.
_PG_READ_ONLY, _PG_CANCELED = "25006", "57014"
_PG_USAGE_CLASSES = ("22", "42", "0A")


def _run_postgresql(
    url: str,
    sql: str,
    params: Mapping[str, Any] | Sequence[Any] | None,
    limits: _Limits,
) -> SqlResult:
    """run_sql on PostgreSQL: in a READ ONLY transaction, where PostgreSQL
    itself refuses every write; the statement goes by the extended protocol,
    so it is one statement (a COMMIT and a write after it are refused
    whole); a statement_timeout of the time limit; rows streamed one at a
    time (single-row mode) and the rest cancelled at a limit; rolled back
    and closed afterwards.  Parameters are :NAME, as on SQLite."""
    if params is not None and not isinstance(params, Mapping):
        raise UsageError("SQL: on PostgreSQL, parameters are named (:NAME and -p NAME VALUE)")
    engine = store.read_engine(url)
    time_limit = limits.time_limit
    try:
        statement, values = sql, None
        if params:  # :NAME as the driver's placeholders (SQL without them goes as it is)
            compiled = sql_text(sql).compile(dialect=engine.dialect)
            statement = compiled.string
            try:
                values = compiled.construct_params(dict(params))
            except sa_exc.InvalidRequestError as exc:
                raise UsageError(f"SQL: {_one_line(str(exc))} (use -p NAME VALUE)") from None
        fairy = engine.raw_connection()
        try:
            connection = fairy.driver_connection
            assert connection is not None
            connection.read_only = True  # psycopg: BEGIN READ ONLY
            with connection.cursor() as cursor:
                cursor.execute(  # taken before the statement: it cannot turn read-write
                    "SELECT set_config('statement_timeout', %s, true)",
                    (str(0 if time_limit is None else max(1, math.ceil(time_limit * 1000))),),
                )
                stream = cursor.stream(statement, values)
                try:
                    rows, truncated = limits.take(stream)
                finally:
                    stream.close()  # cancels what the server would still send
                columns = tuple(column.name for column in cursor.description or ())
            connection.rollback()
        finally:
            fairy.invalidate()  # closed, not pooled: nothing of this session lives on
    except sa_exc.DBAPIError as exc:
        raise database_error(exc.orig if exc.orig is not None else exc) from None
    except Exception as exc:
        if not type(exc).__module__.startswith("psycopg"):  # the driver's, unwrapped
            raise
        raise _postgresql_error(exc, time_limit) from None
    finally:
        engine.dispose()
    return SqlResult(columns, [tuple(map(_plain, row)) for row in rows], truncated)


def _postgresql_error(exc: Exception, time_limit: float | None) -> KextlogError:
    code: str = getattr(exc, "sqlstate", "") or ""
    diagnostics = getattr(exc, "diag", None)
    message = _one_line(getattr(diagnostics, "message_primary", None) or str(exc))
    if code == _PG_READ_ONLY:
        return ReadOnlyError(f"read-only: {message} (kextlog sql only reads)")
    if code == _PG_CANCELED and time_limit is not None:
        return time_limit_error(time_limit)
    if code.startswith(_PG_USAGE_CLASSES):
        return UsageError(f"SQL: {message}")
    return DatabaseError(message)


def _plain(value: Any) -> Any:
    """A PostgreSQL value as the plain ones SQLite gives (int, float, str,
    bytes, None), which every output format can write: exact numerics as
    int when whole, else float; times, uuids and the like as their text."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _run_guarded(
    connection: sqlite3.Connection,
    sql: str,
    params: Mapping[str, Any] | Sequence[Any] | None,
    limits: _Limits,
) -> SqlResult:
    guard = _ReadOnlyGuard()
    connection.isolation_level = None  # no implicit BEGIN from the driver
    connection.execute("PRAGMA query_only = ON")
    if sys.version_info >= (3, 11):  # on 3.10 the authorizer alone refuses ATTACH
        connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        if limits.max_bytes is not None:
            # Any string or blob the statement builds (zeroblob, printf,
            # replace, group_concat...); Python 3.10 has no setlimit: there
            # the heap limit alone holds them.
            connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, min(limits.max_bytes, 2**31 - 1))
    heap = None
    if limits.max_bytes is not None:
        # SQLite's memory, all connections of the process: put back after.
        (heap,) = connection.execute("PRAGMA hard_heap_limit").fetchone()
        limit = min(2 * limits.max_bytes + _HEAP_MARGIN, INT64_MAX)
        connection.execute(f"PRAGMA hard_heap_limit = {limit if not heap else min(heap, limit)}")
    deadline = None if limits.time_limit is None else time.monotonic() + limits.time_limit
    callbacks = _Callbacks(deadline)
    callbacks.attach(connection)
    connection.set_authorizer(guard)
    try:
        cursor = connection.execute(sql, params if params is not None else ())
        rows, truncated = limits.take(cursor)
        columns = tuple(column[0] for column in cursor.description or ())
        cursor.close()
        return SqlResult(columns, rows, truncated)
    except (sqlite3.Error, sqlite3.Warning) as exc:  # 3.10: "one statement at a time" is a Warning
        if store.is_damaged(exc):
            raise  # run_sql names the file
        raise _sql_error(exc, guard, callbacks, limits) from None
    except MemoryError:  # SQLite's heap limit, in the driver's words
        raise limits.too_big() from None
    finally:
        connection.set_progress_handler(None, 0)
        connection.set_authorizer(None)
        if heap is not None:
            connection.execute(f"PRAGMA hard_heap_limit = {heap}")


def _sql_error(
    exc: sqlite3.Error | sqlite3.Warning,
    guard: _ReadOnlyGuard,
    callbacks: _Callbacks,
    limits: _Limits,
) -> BaseException:
    message = _one_line(str(exc))
    if guard.denied is not None:
        return ReadOnlyError(f"read-only: {guard.denied} is not allowed (kextlog sql only reads)")
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    if (
        primary == _SQLITE_READONLY
        or "readonly database" in message
        or "may not be modified" in message  # SQLite's own refusal to touch sqlite_master
    ):
        return ReadOnlyError(f"read-only: {message}")
    callback = callbacks.failure(exc)
    if callback is not None:
        return callback
    if message == "interrupted":
        return limits.too_long()
    if limits.max_bytes is not None and (primary == _SQLITE_TOOBIG or "too big" in message):
        return limits.too_big()
    if "has no name, but you supplied a dictionary" in message:
        return UsageError(f"SQL: {message} (use :NAME in the SQL and -p NAME VALUE)")
    if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.Warning)) or primary == _SQLITE_ERROR:
        return UsageError(f"SQL: {message}")
    if primary is None and isinstance(exc, sqlite3.OperationalError) and "locked" not in message:
        return UsageError(f"SQL: {message}")  # Python 3.10 has no error codes
    return DatabaseError(message)


def _one_line(text: str) -> str:
    return " ".join(text.split())

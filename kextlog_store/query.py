"""The read path: records matching a filter, in the order they were logged,
with the losses among them, and read-only SQL for `kextlog sql`.

Only what reading needs is imported here (SQLAlchemy Core and the store's
table definitions): never Alembic, cffi or the CLI.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Engine, Select, func, select
from sqlalchemy import exc as sa_exc

from . import store
from .errors import DatabaseError, ReadOnlyError, UsageError
from .levels import Level
from .records import Entry, Loss, Record

# --- records --------------------------------------------------------------


@dataclass(frozen=True)
class RecordFilter:
    """Which records `kextlog query` shows; every field narrows the selection.

    levels: (lowest, highest), both included; None for all.
    since_ns / until_ns: wall-clock bounds in UTC nanoseconds, both included
    (as journalctl's --since/--until).
    pids: any of these pids; empty for all.
    lines: only the last N matching records (still in logged order).
    """

    levels: tuple[Level, Level] | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    pids: tuple[int, ...] = ()
    lines: int | None = None
    # Later filters (process globs, --grep, --instance, --source, cursors,
    # --reverse) are further fields here and further terms in _conditions().

    def __post_init__(self) -> None:
        if self.lines is not None and self.lines < 0:
            raise UsageError(f"--lines must be 0 or more, not {self.lines}")


_records = store.records
_instances = store.instances
_COLUMNS = (
    _records.c.time_ns,
    _records.c.level,
    _records.c.pid,
    _records.c.tid,
    _records.c.process,
    _records.c.message,
    _records.c.seq,
    _instances.c.uuid.label("instance"),
    _instances.c.source,
    _records.c.flags,
)
# The order records were logged in: by wall-clock time, ties by instance and seq.
_LOGGED = (_records.c.time_ns, _records.c.instance_id, _records.c.seq)
_LEVELS = {level.value: level for level in Level}


def _conditions(record_filter: RecordFilter) -> list[ColumnElement[bool]]:
    terms: list[ColumnElement[bool]] = []
    if record_filter.levels is not None:
        low, high = record_filter.levels
        if (low, high) != (min(Level), max(Level)):  # all levels: no term, no index on level
            # IN rather than BETWEEN: SQLite then searches the (level, time_ns)
            # index once per level, bounded by --since/--until as well.
            wanted = [int(level) for level in Level if low <= level <= high]
            terms.append(
                _records.c.level == wanted[0] if len(wanted) == 1 else _records.c.level.in_(wanted)
            )
    if record_filter.since_ns is not None:
        terms.append(_records.c.time_ns >= record_filter.since_ns)
    if record_filter.until_ns is not None:
        terms.append(_records.c.time_ns <= record_filter.until_ns)
    if record_filter.pids:
        terms.append(_records.c.pid.in_(sorted(set(record_filter.pids))))
    return terms


def select_records(record_filter: RecordFilter) -> Select[Any]:
    """The SELECT behind records(): newest first when only the last N are wanted."""
    statement = (
        select(*_COLUMNS)
        .select_from(_records.join(_instances, _records.c.instance_id == _instances.c.id))
        .where(*_conditions(record_filter))
    )
    if record_filter.lines is None:
        return statement.order_by(*_LOGGED)
    return statement.order_by(*(column.desc() for column in _LOGGED)).limit(record_filter.lines)


def records(engine: Engine, record_filter: RecordFilter) -> Generator[Record, None, None]:
    """The matching records in logged order (time, instance, seq), streamed.

    Close the generator (contextlib.closing) before disposing of the engine.
    Errors of the database come out as errors.DatabaseError while iterating.
    """
    statement = select_records(record_filter)
    try:
        with engine.connect() as connection:
            result = connection.execute(statement)
            if record_filter.lines is None:
                for row in result:
                    yield _record(row)
            else:
                for row in reversed(result.all()):
                    yield _record(row)
    except sa_exc.DBAPIError as exc:
        raise _database_error(exc.orig if exc.orig is not None else exc) from None


def _record(row: Sequence[Any]) -> Record:
    time_ns, level, pid, tid, process, message, seq, instance, source, flags = row
    try:
        known = _LEVELS[level]
    except KeyError:
        raise DatabaseError(f"record {instance}:{seq} has an unknown level {level!r}") from None
    return Record(time_ns, known, pid, tid, process, message, seq, instance, source, flags)


def _database_error(exc: BaseException) -> DatabaseError:
    message = _one_line(str(exc))
    if "no such table" in message or "no such column" in message:
        return DatabaseError(
            f"not a kextlog database, or an older schema ({message}); run `kextlog db upgrade`"
        )
    return DatabaseError(message)


# --- losses among the records ----------------------------------------------

_losses = store.losses
# The time of the instance's first stored record after the loss: one search
# of the UNIQUE (instance_id, seq) index per loss, made only when the loss's
# own time is unknown (COALESCE stops at the first value that is not NULL).
_NEXT_RECORD_TIME = (
    select(_records.c.time_ns)
    .where(_records.c.instance_id == _losses.c.instance_id, _records.c.seq > _losses.c.last_seq)
    .order_by(_records.c.seq)
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
    )
    .select_from(_losses.join(_instances, _losses.c.instance_id == _instances.c.id))
    .subquery("placed")
)


def select_losses(since_ns: int | None = None, until_ns: int | None = None) -> Select[Any]:
    """The SELECT behind losses(): every loss placed within [since_ns, until_ns]
    (both included, None for open), in logged order (time, instance, first seq)."""
    terms: list[ColumnElement[bool]] = []
    if since_ns is not None:
        terms.append(_PLACED.c.time_ns >= since_ns)
    if until_ns is not None:
        terms.append(_PLACED.c.time_ns <= until_ns)
    columns = [column for column in _PLACED.c if column.name != "instance_id"]
    return (
        select(*columns)
        .where(*terms)
        .order_by(_PLACED.c.time_ns, _PLACED.c.instance_id, _PLACED.c.first_seq)
    )


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
            return _fetch_losses(connection, since_ns, until_ns)
    except sa_exc.DBAPIError as exc:
        raise _database_error(exc.orig if exc.orig is not None else exc) from None


def _fetch_losses(connection: Connection, since_ns: int | None, until_ns: int | None) -> list[Loss]:
    statement = select_losses(since_ns, until_ns)
    return [Loss(**row._mapping) for row in connection.execute(statement)]


def entries(engine: Engine, record_filter: RecordFilter) -> Generator[Entry, None, None]:
    """What `kextlog query` shows: the matching records in logged order, and
    a Loss wherever records are missing, streamed.

    A loss is shown when its time (records.Loss) lies within --since/--until;
    level and pid filters never hide one, since the missing records could
    have been of any level and pid.  A loss comes before records of the same
    time.  With lines (-n N) the output is the tail of that whole output that
    starts at the first of the last N records: losses before it are left out
    with the older records (also one at the same time, as it comes before
    that record), and every loss after the last record is shown up to
    until_ns: those records are the newest that match, so such a loss may
    have taken newer ones, which is what someone watching the end of the
    log needs to see.  When N covers every matching record, -n changes
    nothing; -n 0 shows nothing.

    Close the generator (contextlib.closing) before disposing of the engine.
    Errors of the database come out as errors.DatabaseError while iterating.
    """
    since_ns, until_ns = record_filter.since_ns, record_filter.until_ns
    lines = record_filter.lines
    try:
        with engine.connect() as connection:
            if lines is None:
                # Losses are few: all of them in the window first, then the
                # records streamed past them.
                found = _fetch_losses(connection, since_ns, until_ns)
                rows = connection.execute(select_records(record_filter))
                yield from _merge((_record(row) for row in rows), found)
                return
            # One more than asked for tells whether -n left records out.
            newest = connection.execute(select_records(record_filter).limit(lines + 1)).all()
            if lines == 0:
                return
            shown = [_record(row) for row in reversed(newest[:lines])]
            if len(newest) > lines:
                # A loss at the time of the first shown record comes before
                # it, so it goes with the records left out.
                since_ns = shown[0].time_ns + 1
            yield from _merge(shown, _fetch_losses(connection, since_ns, until_ns))
    except sa_exc.DBAPIError as exc:
        raise _database_error(exc.orig if exc.orig is not None else exc) from None


def _merge(found: Iterable[Record], lost: Sequence[Loss]) -> Iterator[Entry]:
    """Records and losses, both in logged order, into one: a loss before the
    records of its time."""
    pending = iter(lost)
    loss = next(pending, None)
    for record in found:
        while loss is not None and loss.time_ns <= record.time_ns:
            yield loss
            loss = next(pending, None)
        yield record
    if loss is not None:
        yield loss
        yield from pending


# --- read-only SQL --------------------------------------------------------


class SqlResult(NamedTuple):
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


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


def run_sql(
    url: str,
    sql: str,
    params: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    time_limit: float | None = None,
) -> SqlResult:
    """Run one SQL statement that only reads; return column names and rows.

    Read-only is enforced by SQLite, never by looking at the SQL: the file is
    opened with mode=ro, query_only is on, no database can be attached (which
    also stops VACUUM INTO), and an authorizer allows only reading.  Anything
    else raises ReadOnlyError; a bad statement UsageError; time_limit
    (seconds) interrupts a statement that runs longer (DatabaseError).
    (A row cap, issue 5, belongs here too.)
    """
    if not sql.strip():
        raise UsageError("SQL: no SQL statement given")
    if store.sqlite_path(url) is None:
        raise DatabaseError("kextlog sql supports SQLite stores only, for now")
    engine = store.read_engine(url)
    try:
        fairy = engine.raw_connection()
        try:
            connection = fairy.driver_connection
            assert isinstance(connection, sqlite3.Connection)
            return _run_guarded(connection, sql, params, time_limit)
        finally:
            # Closed, not pooled: the guard stays with this connection to the end.
            fairy.invalidate()
    except sqlite3.Error as exc:  # opening failed, e.g. not a database
        raise _database_error(exc) from None
    except sa_exc.DBAPIError as exc:
        raise _database_error(exc.orig if exc.orig is not None else exc) from None
    finally:
        engine.dispose()


def _run_guarded(
    connection: sqlite3.Connection,
    sql: str,
    params: Mapping[str, Any] | Sequence[Any] | None,
    time_limit: float | None,
) -> SqlResult:
    guard = _ReadOnlyGuard()
    connection.isolation_level = None  # no implicit BEGIN from the driver
    connection.execute("PRAGMA query_only = ON")
    if sys.version_info >= (3, 11):  # on 3.10 the authorizer alone refuses ATTACH
        connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    deadline = None if time_limit is None else time.monotonic() + time_limit

    def progress() -> int:
        # Called every few thousand SQLite instructions: stops at the time
        # limit, and gives Python the chance to raise KeyboardInterrupt.
        return int(deadline is not None and time.monotonic() > deadline)

    connection.set_authorizer(guard)
    connection.set_progress_handler(progress, 10_000)
    try:
        cursor = connection.execute(sql, params if params is not None else ())
        rows = cursor.fetchall()
        columns = tuple(column[0] for column in cursor.description or ())
        cursor.close()
        return SqlResult(columns, rows)
    except (sqlite3.Error, sqlite3.Warning) as exc:  # 3.10: "one statement at a time" is a Warning
        raise _sql_error(exc, guard, deadline, time_limit) from None
    finally:
        connection.set_progress_handler(None, 0)


def _sql_error(
    exc: sqlite3.Error | sqlite3.Warning,
    guard: _ReadOnlyGuard,
    deadline: float | None,
    time_limit: float | None,
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
    if message == "interrupted":
        if deadline is not None and time.monotonic() > deadline:
            return DatabaseError(f"SQL stopped after the time limit of {time_limit:g} s")
        return KeyboardInterrupt()  # Ctrl-C arrived inside the progress handler
    if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.Warning)) or primary == _SQLITE_ERROR:
        return UsageError(f"SQL: {message}")
    if primary is None and isinstance(exc, sqlite3.OperationalError) and "locked" not in message:
        return UsageError(f"SQL: {message}")  # Python 3.10 has no error codes
    return DatabaseError(message)


def _one_line(text: str) -> str:
    return " ".join(text.split())

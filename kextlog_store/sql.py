"""Read-only SQL: `kextlog sql`.  Read-only is enforced by the database,
never by looking at the SQL; every statement ends in bounded time and
memory (run_sql)."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import exc as sa_exc
from sqlalchemy import text as sql_text

from .callbacks import Callbacks
from .errors import DatabaseError, KextlogError, ReadOnlyError, UsageError, one_line
from .records import INT64_MAX
from .store.engine import read_engine, sqlite_path
from .store.errors import (
    SQLITE_ERROR,
    SQLITE_READONLY,
    SQLITE_TOOBIG,
    damaged,
    is_damaged,
    sqlite_code,
    translate,
)


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
    path = sqlite_path(url)
    if path is None:
        return _run_postgresql(url, sql, params, limits)
    engine = read_engine(url)
    try:
        fairy = engine.raw_connection()
        try:
            connection = fairy.driver_connection
            assert isinstance(connection, sqlite3.Connection)
            try:
                return _run_guarded(connection, sql, params, limits)
            except sqlite3.DatabaseError as exc:  # only a damaged file comes out as it is
                raise damaged(path, exc) from None
        finally:
            # Closed, not pooled: the guard stays with this connection to the end.
            fairy.invalidate()
    except sqlite3.Error as exc:  # opening failed, e.g. not a database
        raise translate(exc) from None
    except sa_exc.DBAPIError as exc:
        raise translate(exc) from None
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
    engine = read_engine(url)
    time_limit = limits.time_limit
    try:
        statement, values = sql, None
        if params:  # :NAME as the driver's placeholders (SQL without them goes as it is)
            compiled = sql_text(sql).compile(dialect=engine.dialect)
            statement = compiled.string
            try:
                values = compiled.construct_params(dict(params))
            except sa_exc.InvalidRequestError as exc:
                raise UsageError(f"SQL: {one_line(str(exc))} (use -p NAME VALUE)") from None
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
        raise translate(exc) from None
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
    message = one_line(getattr(diagnostics, "message_primary", None) or str(exc))
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
    callbacks = Callbacks(deadline)
    callbacks.attach(connection)
    connection.set_authorizer(guard)
    try:
        cursor = connection.execute(sql, params if params is not None else ())
        rows, truncated = limits.take(cursor)
        columns = tuple(column[0] for column in cursor.description or ())
        cursor.close()
        return SqlResult(columns, rows, truncated)
    except (sqlite3.Error, sqlite3.Warning) as exc:  # 3.10: "one statement at a time" is a Warning
        if is_damaged(exc):
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
    callbacks: Callbacks,
    limits: _Limits,
) -> BaseException:
    message = one_line(str(exc))
    if guard.denied is not None:
        return ReadOnlyError(f"read-only: {guard.denied} is not allowed (kextlog sql only reads)")
    primary = sqlite_code(exc)
    if (
        primary == SQLITE_READONLY
        or "readonly database" in message
        or "may not be modified" in message  # SQLite's own refusal to touch sqlite_master
    ):
        return ReadOnlyError(f"read-only: {message}")
    callback = callbacks.failure(exc)
    if callback is not None:
        return callback
    if message == "interrupted":
        return limits.too_long()
    if limits.max_bytes is not None and (primary == SQLITE_TOOBIG or "too big" in message):
        return limits.too_big()
    if "has no name, but you supplied a dictionary" in message:
        return UsageError(f"SQL: {message} (use :NAME in the SQL and -p NAME VALUE)")
    if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.Warning)) or primary == SQLITE_ERROR:
        return UsageError(f"SQL: {message}")
    if primary is None and isinstance(exc, sqlite3.OperationalError) and "locked" not in message:
        return UsageError(f"SQL: {message}")  # Python 3.10 has no error codes
    return DatabaseError(message)

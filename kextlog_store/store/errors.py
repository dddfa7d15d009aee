"""Database errors in kextlog's words.

translate() turns a driver's error (or SQLAlchemy's wrapper of one) into the
typed DatabaseError the CLI reports in one line; is_damaged() and damaged()
name a damaged file and what to do about it; passing_failure() tells a write
that may succeed when tried again from one that cannot.  SQLite's result
codes are decoded here, once (sqlite_code).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import DatabaseError, one_line

# What to do with a file kextlog cannot use; it never changes such a file.
ADVICE = "restore it from a backup or move it aside; `kextlog db check` tells more"

# SQLite's primary result codes that kextlog tells apart (sqlite3 names them
# only from Python 3.11 on), with their messages, for Python 3.10, whose
# errors carry no code.
SQLITE_ERROR = 1
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_PROTOCOL = 15
SQLITE_TOOBIG = 18
SQLITE_NOTADB = 26
_MESSAGES = {
    SQLITE_BUSY: "database is locked",
    SQLITE_LOCKED: "database table is locked",
    SQLITE_READONLY: "attempt to write a readonly database",
    SQLITE_IOERR: "disk I/O error",
    SQLITE_CORRUPT: "database disk image is malformed",
    SQLITE_FULL: "database or disk is full",
    SQLITE_CANTOPEN: "unable to open database file",
    SQLITE_PROTOCOL: "locking protocol",
    SQLITE_TOOBIG: "string or blob too big",
    SQLITE_NOTADB: "file is not a database",
}
# A damaged file; and write failures that can pass, in a few words: tried
# again later, the same transaction may succeed.
_DAMAGED = frozenset({SQLITE_CORRUPT, SQLITE_NOTADB})
_PASSING = {
    SQLITE_BUSY: "database is locked",  # past the busy timeout
    SQLITE_LOCKED: "database is locked",
    SQLITE_READONLY: "read-only",
    SQLITE_IOERR: "I/O error",
    SQLITE_FULL: "disk full",
    SQLITE_CANTOPEN: "cannot open",  # e.g. the -wal file
    SQLITE_PROTOCOL: "locking protocol",
}
# PostgreSQL's error codes of a missing table or column: undefined_table,
# undefined_column.
_PG_UNDEFINED = frozenset({"42P01", "42703"})
# ... and of write failures that can pass: the server rolled the transaction
# back (a deadlock, a serialization failure), or is short of resources.
_PG_PASSING = {
    "40001": "serialization failure",
    "40P01": "deadlock",
    "53100": "disk full",
    "53200": "out of memory",
    "53300": "too many connections",
    "57P03": "server starting or stopping",
}


def driver_error(error: BaseException) -> BaseException:
    """The driver's own error inside SQLAlchemy's wrapper (or error itself)."""
    orig = getattr(error, "orig", None)  # SQLAlchemy's StatementError: not imported to ask
    return orig if isinstance(orig, BaseException) else error


def sqlite_code(error: BaseException) -> int | None:
    """SQLite's primary result code of a driver error (None: not SQLite's,
    or not one _MESSAGES knows, on Python 3.10)."""
    error = driver_error(error)
    if not isinstance(error, (sqlite3.Error, sqlite3.Warning)):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    message = str(error)
    return next((code for code, text in _MESSAGES.items() if text in message), None)


def translate(error: BaseException) -> DatabaseError:
    """A driver error (or SQLAlchemy's wrapper of one) as a one-line
    DatabaseError, saying when the database is not a kextlog store."""
    cause = driver_error(error)
    message = one_line(str(cause))
    missing = getattr(cause, "sqlstate", None) in _PG_UNDEFINED
    if missing or "no such table" in message or "no such column" in message:
        return DatabaseError(
            f"not a kextlog database, or an older schema ({message}); run `kextlog db upgrade`"
        )
    return DatabaseError(message)


def is_damaged(error: BaseException) -> bool:
    """Whether the database said its file is damaged or not a database."""
    return sqlite_code(error) in _DAMAGED


def damaged(path: Path, error: BaseException) -> DatabaseError:
    """The error for a damaged database file: which, and what to do."""
    return DatabaseError(f"{path} is damaged or not a database ({one_line(error)}): {ADVICE}")


def passing_failure(error: BaseException) -> str | None:
    """What failed, in a few words, when a write to the store failed in a way
    that can pass (a full disk, a read-only or failing file system, a lock
    held past the busy timeout, a lost server connection, a deadlock the
    server broke): the same transaction may succeed when tried again.  None when trying again cannot
    help: a damaged file, a missing table, a bug."""
    if getattr(error, "connection_invalidated", False):  # SQLAlchemy's DBAPIError
        return "connection lost"
    cause = driver_error(error)
    if not isinstance(cause, sqlite3.Error):
        return _PG_PASSING.get(getattr(cause, "sqlstate", None) or "")
    return _PASSING.get(sqlite_code(error) or 0)

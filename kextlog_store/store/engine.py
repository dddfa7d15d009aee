"""How the store is opened: engines that write (the daemon, prune, upgrades)
and engines that only read (every other command); the readers of the read
path (`kextlog query`), which on SQLite do not load SQLAlchemy; and the
first look at a SQLite file before anything opens it for real.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from .. import migrations, redact
from ..callbacks import Callbacks
from ..errors import DatabaseError
from .errors import ADVICE, damaged, is_damaged, translate
from .location import check_private, create_file, locate_database

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.engine import ExceptionContext


def _engine(url: str, **options: object) -> Engine:
    from sqlalchemy import create_engine

    try:
        return create_engine(url, **options)
    except ImportError as exc:  # the driver is an optional extra (psycopg for PostgreSQL)
        raise DatabaseError(
            f"{redact.redact(url)}: no driver for this database ({exc});"
            " for PostgreSQL: pip install 'kextlog[postgresql]'"
        ) from None
    except ValueError as exc:  # SQLAlchemy cannot parse it, or no such back end
        raise DatabaseError(f"invalid database URL: {exc}") from None


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, None for other back ends."""
    plain = url.removeprefix("sqlite:///")
    if plain != url and plain and plain != ":memory:" and not any(c in plain for c in "?%"):
        return Path(plain)  # as location.database_url writes a path: no need to parse
    from sqlalchemy import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise DatabaseError(f"{redact.redact(url)}: kextlog needs a database file")
    return Path(parsed.database)


def _tune_sqlite(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # The daemon is the one steady writer; readers and maintenance wait their
    # turn (busy timeout) instead of failing with "database is locked".
    dbapi_connection.execute("PRAGMA busy_timeout = 10000")
    dbapi_connection.execute("PRAGMA synchronous = NORMAL")


def write_engine(url: str) -> Engine:
    """An engine that may create and change the database: a path no other
    user can steer (locate_database), a file made private when new, and
    an existing one kextlog can use (check_file)."""
    from sqlalchemy import event

    path = sqlite_path(url)
    if path is None:
        return _engine(url)
    directory, name = locate_database(path, create=True)
    with directory:
        try:
            create_file(directory, name)
        except FileExistsError:
            check_file(path)
    engine = _engine(url)
    event.listen(engine, "connect", _tune_sqlite)
    event.listen(engine, "connect", _tune_writer)
    _name_damage(engine, path)
    return engine


def _tune_writer(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # The writer's working set (the pages new records and index entries land
    # on) stays in memory; the pid merge's temporary tables and sort spill to
    # temporary files rather than grow the daemon (ingest RSS <= 150 MB).
    dbapi_connection.execute("PRAGMA cache_size = -16384")


def read_engine(url: str) -> Engine:
    """A read-only engine on an existing database; it never creates one."""
    path = sqlite_path(url)
    if path is None:
        # A read-only transaction, one snapshot from its first statement to
        # its end (--follow's first output and the ids it ends at).
        return _engine(
            url,
            isolation_level="REPEATABLE READ",
            execution_options={"postgresql_readonly": True},
        )
    from sqlalchemy import create_engine, event

    uri = _read_only(path)

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect)
    event.listen(engine, "connect", _tune_sqlite)
    _name_damage(engine, path)
    return engine


def _read_only(path: Path) -> str:
    """The URI that opens an existing store read-only, once it is checked."""
    if not path.exists():
        raise DatabaseError(
            f"no kextlog database at {path} (start `kextlog ingest` or pass --db / KEXTLOG_DB)"
        )
    check_private(path)  # SQLite opens its -wal and -shm by name beside it
    check_file(path)
    return f"file:{quote(str(path))}?mode=ro"


# --- the read path's readers ------------------------------------------------


class Reading(Protocol):
    """A connection of the read path: SQL text and parameters as
    conditions.Sql writes them for its back end (name)."""

    name: str  # "sqlite" or "postgresql"

    def execute(self, statement: str, params: Sequence[Any]) -> Iterable[Sequence[Any]]: ...

    def begin(self) -> None:
        """One snapshot from here to rollback()."""

    def rollback(self) -> None: ...


class Reader(Protocol):
    """A store opened for reading; connect() as often as needed, dispose() at the end."""

    def connect(self) -> AbstractContextManager[Reading]: ...

    def dispose(self) -> None: ...


def reader(url: str, *, deadline: float | None = None) -> Reader:
    """The read path's reader of an existing store: SQLite through the
    stdlib's driver (importing SQLAlchemy costs a small query several times
    its work), PostgreSQL through the read engine.  deadline: on SQLite,
    time.monotonic() past which its statements stop (kextlog web's time
    limit; the web reads SQLite only)."""
    path = sqlite_path(url)
    return _PostgresqlReader(read_engine(url)) if path is None else _SqliteReader(path, deadline)


class _SqliteReading:
    name = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, statement: str, params: Sequence[Any]) -> Iterable[Sequence[Any]]:
        return self._connection.execute(statement, params)

    def begin(self) -> None:
        self._connection.execute("BEGIN")

    def rollback(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")


class _SqliteReader:
    def __init__(self, path: Path, deadline: float | None) -> None:
        self._path = path
        self._uri = _read_only(path)
        self._deadline = deadline

    @contextmanager
    def connect(self) -> Iterator[Reading]:
        """A read-only connection with RE2's REGEXP and the progress handler
        (callbacks.py); a driver error while it is used comes out as what it
        was (a Ctrl-C, a refused pattern) or as a DatabaseError."""
        callbacks = Callbacks(self._deadline)
        try:
            connection = sqlite3.connect(
                self._uri, uri=True, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise self._error(error, None) from None
        try:
            _tune_sqlite(connection, None)
            callbacks.attach(connection)
            yield _SqliteReading(connection)
        except sqlite3.Error as error:
            raise self._error(error, callbacks) from None
        finally:
            connection.close()

    def _error(self, error: sqlite3.Error, callbacks: Callbacks | None) -> BaseException:
        found = callbacks.failure(error) if callbacks is not None else None
        if found is not None:
            return found
        # A damaged page found by any statement (a first look at the start
        # cannot read every page).
        return damaged(self._path, error) if is_damaged(error) else translate(error)

    def dispose(self) -> None:
        pass  # each connection closes with its block


class _PostgresqlReading:
    name = "postgresql"

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def execute(self, statement: str, params: Sequence[Any]) -> Iterable[Sequence[Any]]:
        return self._connection.exec_driver_sql(statement, tuple(params))

    def begin(self) -> None:
        pass  # the read engine's transactions are one snapshot (REPEATABLE READ)

    def rollback(self) -> None:
        self._connection.rollback()


class _PostgresqlReader:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def connect(self) -> Iterator[Reading]:
        from sqlalchemy import exc as sa_exc

        try:
            with self._engine.connect() as connection:
                yield _PostgresqlReading(connection)
        except sa_exc.DBAPIError as error:
            raise translate(error) from None

    def dispose(self) -> None:
        self._engine.dispose()


def _name_damage(engine: Engine, path: Path) -> None:
    """A damaged page found by any statement of engine (a first look at
    start cannot read every page) is reported as damaged(path)."""
    from sqlalchemy import event

    def handle_error(context: ExceptionContext) -> None:
        if is_damaged(context.original_exception):
            raise damaged(path, context.original_exception)

    event.listen(engine, "handle_error", handle_error)


def known_revisions() -> set[str]:
    """The schema revisions this kextlog knows, without loading Alembic (the
    read path never does): each revision's file in migrations/versions is
    named after it (tests/test_migrate.py holds every file to that)."""
    versions = Path(migrations.__file__).parent / "versions"
    return {path.name.partition("_")[0] for path in versions.glob("[!_]*.py")}


def _truncated(path: Path) -> str | None:
    """Whether the file is shorter than its header says (SQLite itself
    reads on until a missing page, and then says only "malformed").  Not
    while a -wal file holds commits: its pages count, and a checkpoint cut
    short (a full disk) leaves the file short of its new header."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return None
    with path.open("rb") as file:
        header = file.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid when written with the change counter it goes with.
    if header[24:28] != header[92:96]:
        return None
    size = path.stat().st_size
    if pages * page_size <= size:
        return None
    return f"truncated: {size:,} bytes, its header counts {pages:,} pages of {page_size:,}"


def check_file(path: Path) -> None:
    """Refuse a file kextlog cannot use before anything opens it for real:
    not a SQLite database, damaged where a first look reaches (its header
    and schema), or from a newer kextlog.  The look opens it read-only and
    changes nothing; `kextlog db check` looks at every page."""
    try:
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=10)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            revisions: set[str] = set()
            if "alembic_version" in tables:
                rows = connection.execute("SELECT version_num FROM alembic_version")
                revisions = {row[0] for row in rows}
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:  # also: cannot be opened (permissions)
        if is_damaged(error):
            raise damaged(path, error) from None
        raise DatabaseError(f"{path}: {error}") from None
    problem = _truncated(path)
    if problem is not None:
        raise DatabaseError(f"{path} is damaged ({problem}): {ADVICE}")
    unknown = revisions - known_revisions()
    if unknown:
        raise DatabaseError(
            f"{path} has schema revision {', '.join(sorted(unknown))}, newer than this kextlog "
            "knows: use the newer kextlog that wrote it, or upgrade this one"
        )

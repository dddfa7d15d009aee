"""How the store is opened: engines that write (the daemon, prune, upgrades)
and engines that only read (every other command), and the first look at a
SQLite file before anything opens it for real.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext

from .. import migrations, redact
from ..errors import DatabaseError
from .errors import ADVICE, damaged, is_damaged
from .location import check_private, create_file, locate_database


def _engine(url: str, **options: object) -> Engine:
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
    if not path.exists():
        raise DatabaseError(
            f"no kextlog database at {path} (start `kextlog ingest` or pass --db / KEXTLOG_DB)"
        )
    check_private(path)  # SQLite opens its -wal and -shm by name beside it
    check_file(path)
    uri = f"file:{quote(str(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect)
    event.listen(engine, "connect", _tune_sqlite)
    _name_damage(engine, path)
    return engine


def _name_damage(engine: Engine, path: Path) -> None:
    """A damaged page found by any statement of engine (a first look at
    start cannot read every page) is reported as damaged(path)."""

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

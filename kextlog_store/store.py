"""The store: schema, where the database lives, and how it is opened.

SQLAlchemy Core tables are the one description of the schema; Alembic
revisions in migrations/ are the only way it changes.  Times are integers in
nanoseconds (UTC since the epoch for wall-clock times), so they sort and
compare exactly; the readable view `log` renders them.
"""

from __future__ import annotations

import grp
import os
import socket
import sqlite3
import stat
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    literal_column,
    make_url,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext

from . import migrations, paths, redact
from .errors import DatabaseError, UsageError

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A 64-bit key that SQLite still treats as its rowid (INTEGER PRIMARY KEY).
RowId = BigInteger().with_variant(Integer, "sqlite")

levels = Table(
    "levels",
    metadata,
    Column("level", SmallInteger, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
)

instances = Table(
    "instances",
    metadata,
    Column("id", RowId, primary_key=True),
    # The machine whose ingest registered it: many hosts share a PostgreSQL store.
    Column("host", Text, nullable=False),
    Column("uuid", Text, nullable=False),  # HELLO's instance id, 32 hex digits
    Column("source", Text, nullable=False),  # where ingest read it, e.g. unix:/run/sim.sock
    Column("name", Text, nullable=False),  # the producer's own name (kext bundle id)
    Column("boot_id", Text, nullable=False),
    Column("producer_version", Text, nullable=False),
    Column("first_seen_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
    # Every seq up to high_water is stored, lost, filtered or pruned; pruning never lowers it.
    Column("high_water", BigInteger, nullable=False, server_default="0"),
    Column("filtered", BigInteger, nullable=False, server_default="0"),
    Column("pid_indexed_seq", BigInteger, nullable=False, server_default="0"),
    # Where its seqs start: 1 for a kext, 0 for the kernel's own log (kmsg).
    Column("first_seq", BigInteger, nullable=False, server_default="1"),
    # What prune removed of it (records; seqs of loss rows), counted in the
    # transaction of each delete: the accounting compares counts, not a rest.
    Column("pruned_records", BigInteger, nullable=False, server_default="0"),
    Column("pruned_lost", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("host", "uuid"),
)

# A record's key is (instance, seq), packed into one 64-bit rowid: one B-tree
# to write per record instead of a rowid plus a unique index (see migration
# 0002).  The bounds are the wire header's (KEXTLOG_SEQ_BITS): the reader
# refuses a seq past SEQ_MASK, so one instance's records never take another's
# keys, and with at most INSTANCES_MAX instances no sum of counts or marks
# overflows.  Written as a number so that reading the store loads no cffi;
# ingest, the one writer, checks it against the compiled header at import.
SEQ_BITS = 44
SEQ_MASK = (1 << SEQ_BITS) - 1
INSTANCES_MAX = (1 << (63 - SEQ_BITS)) - 1
# The shift in SQL (instance_id << SEQ_SHIFT): a plain integer literal, as
# PostgreSQL shifts a bigint by an int, not by a bigint parameter.
SEQ_SHIFT = literal_column(str(SEQ_BITS))


def record_id(instance_id: int, seq: int) -> int:
    return instance_id << SEQ_BITS | seq


records = Table(
    "records",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("instance_id", BigInteger, Computed(f"id >> {SEQ_BITS}", persisted=False)),
    Column("seq", BigInteger, Computed(f"id & {SEQ_MASK}", persisted=False)),
    Column("time_ns", BigInteger, nullable=False),
    Column("mono_ns", BigInteger, nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("flags", SmallInteger, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("tid", BigInteger, nullable=False),
    Column("process", Text, nullable=False),
    Column("message", Text, nullable=False),
    # Only records of the kernel's own log (kmsg) have these: NULL costs a
    # kext record one header byte each.
    Column("syslog_priority", SmallInteger),  # 0 emerg .. 7 debug
    Column("facility", SmallInteger),
    Column("fields", Text),  # the record's KEY=value lines, as a JSON object
    Index(None, "time_ns"),
    # Warnings and errors only: the rare levels one searches for.  (Migration
    # 0002 gives PostgreSQL the same WHERE; naming it here would load that
    # dialect, and asyncio with it, at every command's start.)
    Index(None, "level", "time_ns", sqlite_where=text("level >= 4")),
)

# Records by pid, written by ingest in sorted bulk merges; an instance's
# records after its pid_indexed_seq are not in it yet.
pid_index = Table(
    "pid_index",
    metadata,
    Column("pid", Integer, primary_key=True),
    Column("time_ns", BigInteger, primary_key=True),
    Column("id", BigInteger, primary_key=True),
    sqlite_with_rowid=False,
)

losses = Table(
    "losses",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("instance_id", RowId, ForeignKey("instances.id"), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("first_time_ns", BigInteger),  # NULL when the producer no longer knows
    Column("last_time_ns", BigInteger),
    Column("reason", Text, nullable=False),
    Column("recorded_ns", BigInteger, nullable=False),  # when ingest stored the loss
    UniqueConstraint("instance_id", "first_seq"),
)


def system_database_path() -> Path:
    if sys.platform == "darwin":
        return Path("/var/db/kextlog/kextlog.db")
    return Path("/var/lib/kextlog/kextlog.db")


def default_database_path() -> Path:
    """The system store for root (or when it is readable), else the user's own."""
    system = system_database_path()
    if os.geteuid() == 0 or os.access(system, os.R_OK):
        return system
    import platformdirs

    return Path(platformdirs.user_data_dir("kextlog")) / "kextlog.db"


# The URLs kextlog stores in: SQLite's and PostgreSQL's through psycopg 3.
_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


def database_url(db: str | None = None) -> str:
    """--db, else KEXTLOG_DB, else the default location; a value with :// is a
    URL.  A plain postgresql:// (or postgres://) URL, as libpq and psql take
    it, means the psycopg 3 driver.  Raises UsageError for a value kextlog
    cannot store in (without its password); a URL's password is a secret
    from then on (redact.remember)."""
    value = db or os.environ.get("KEXTLOG_DB") or str(default_database_path())
    check_database(value)
    if "://" not in value:
        return "sqlite:///" + os.path.abspath(os.path.expanduser(value))
    scheme, rest = value.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else value


def check_database(value: str) -> None:
    """Refuses (UsageError) a database path or URL that kextlog cannot use:
    a NUL, a URL that does not parse, a back end or driver other than
    SQLite's and psycopg's, a SQLite URL without a file."""
    if "\x00" in value:
        raise UsageError("the database path has a NUL character")
    if "://" not in value:
        return
    redact.remember(value)
    scheme, rest = value.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        scheme = "postgresql+psycopg"
    try:
        parsed = make_url(f"{scheme}://{rest}")
        port = parsed.port
    except (sa_exc.ArgumentError, ValueError) as exc:
        why = redact.redact(" ".join(str(exc).split()))
        raise UsageError(f"invalid database URL {redact.redact(value)!r} ({why})") from None
    if parsed.drivername not in _SCHEMES:
        raise UsageError(
            f"unknown database URL scheme {scheme!r}: kextlog stores in SQLite (a file, or "
            "sqlite:///PATH) or PostgreSQL (postgresql://USER@HOST/DATABASE)"
        )
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"invalid database URL {redact.redact(value)!r} (port {port})")
    if scheme.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise UsageError(f"{redact.redact(value)}: kextlog needs a database file")


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


# The store is private to the daemon's user and an admin group, as journald's
# files are: no access for anyone else.
DIRECTORY_MODE = 0o750
FILE_MODE = 0o640
PRIVATE_UMASK = 0o027  # what ingest runs with: files it writes later are private too


def admin_group() -> int:
    """The group that may read the store: admin on macOS, adm on Linux (who
    may read the system's logs), else the user's own; only one that this
    process may give its files."""
    try:
        gid = grp.getgrnam("admin" if sys.platform == "darwin" else "adm").gr_gid
    except KeyError:
        return os.getegid()
    return gid if os.geteuid() == 0 or gid in os.getgroups() else os.getegid()


def private_directory(path: Path, *, create: bool) -> paths.Directory:
    """A directory of the store, checked (paths.open_directory); with
    create, made when missing: 0750, group admin_group(), and setgid so
    that every file created in it has that group (BSD does that by
    itself), as journald's /var/log/journal."""
    return paths.open_directory(path, **_made_private(create))


def _made_private(create: bool) -> dict[str, Any]:
    """paths' options that make missing directories private (or none)."""
    if not create:
        return {}
    setgid = stat.S_ISGID if sys.platform.startswith("linux") else 0
    return {"mode": DIRECTORY_MODE | setgid, "group": admin_group()}


# SQLite's own files beside the database, which it opens by name.
COMPANIONS = ("-wal", "-shm", "-journal")


def locate_database(path: Path, *, create: bool) -> tuple[paths.Directory, str]:
    """The database's directory and the file's name in it, where a link at
    path leads (paths.locate; with create, missing directories are made as
    private_directory makes them, else they raise paths.Missing); refused
    when others could change either, or SQLite's files there."""
    try:
        directory, name = paths.locate(path, **_made_private(create))
        try:
            for suffix in ("", *COMPANIONS):
                info = directory.lstat(name + suffix)
                if info is not None:
                    paths.check_file(info, directory.path / (name + suffix))
        except BaseException:
            directory.close()
            raise
    except paths.Missing:
        raise  # the caller's to tell: nothing to read, or nothing made yet
    except paths.UnsafePath as error:
        raise DatabaseError(f"refusing the database {path}: {error}") from None
    return directory, name


def _create_file(directory: paths.Directory, name: str) -> None:
    """The database file, new: 0640, group admin_group().  SQLite gives the
    -wal and -shm files it creates later the database file's mode (and, as
    root, its owner and group)."""
    descriptor = directory.create(name, 0o600)
    try:
        os.fchown(descriptor, -1, admin_group())
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)


def check_private(path: Path) -> None:
    """Refuses a database that others could change, as ssh's StrictModes:
    a directory on its way writable by someone else or owned by another
    user, a link on its way another user owns (paths), or the file or
    SQLite's files beside it writable or owned by someone else.  Nothing
    is created: a directory still missing will be made private."""
    with suppress(paths.Missing):
        locate_database(path, create=False)[0].close()


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
            _create_file(directory, name)
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


# What to do with a file kextlog cannot use; it never changes such a file.
ADVICE = "restore it from a backup or move it aside; `kextlog db check` tells more"

# SQLite's primary result codes (with their messages, for Python 3.10, which
# has no codes) of a damaged file, and of write failures that can pass: tried
# again later, the same transaction may succeed.
_DAMAGED = {11: "database disk image is malformed", 26: "file is not a database"}
_PASSING = {
    5: ("database is locked", "database is locked"),  # SQLITE_BUSY, past the busy timeout
    6: ("database is locked", "database table is locked"),  # SQLITE_LOCKED
    8: ("read-only", "attempt to write a readonly database"),  # SQLITE_READONLY
    10: ("I/O error", "disk I/O error"),  # SQLITE_IOERR
    13: ("disk full", "database or disk is full"),  # SQLITE_FULL
    14: ("cannot open", "unable to open database file"),  # SQLITE_CANTOPEN, e.g. the -wal file
    15: ("locking protocol", "locking protocol"),  # SQLITE_PROTOCOL
}


def _primary_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    message = str(error)
    known = {text: code for code, text in _DAMAGED.items()}
    known.update({text: code for code, (_, text) in _PASSING.items()})
    return next((code for text, code in known.items() if text in message), None)


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own error inside SQLAlchemy's wrapper."""
    if isinstance(error, sa_exc.DBAPIError) and error.orig is not None:
        return error.orig
    return error


def is_damaged(error: BaseException) -> bool:
    """Whether the database said its file is damaged or not a database."""
    error = _driver_error(error)
    return isinstance(error, sqlite3.Error) and _primary_code(error) in _DAMAGED


def damaged(path: Path, error: BaseException) -> DatabaseError:
    """The error for a damaged database file: which, and what to do."""
    cause = " ".join(str(_driver_error(error)).split())
    return DatabaseError(f"{path} is damaged or not a database ({cause}): {ADVICE}")


def _name_damage(engine: Engine, path: Path) -> None:
    """A damaged page found by any statement of engine (a first look at
    start cannot read every page) is reported as damaged(path)."""

    def handle_error(context: ExceptionContext) -> None:
        if is_damaged(context.original_exception):
            raise damaged(path, context.original_exception)

    event.listen(engine, "handle_error", handle_error)


def passing_failure(error: BaseException) -> str | None:
    """What failed, in a few words, when a write to the store failed in a way
    that can pass (a full disk, a read-only or failing file system, a lock
    held past the busy timeout, a lost server connection): the same
    transaction may succeed when tried again.  None when trying again cannot
    help: a damaged file, a missing table, a bug."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return "connection lost"
    error = _driver_error(error)
    if not isinstance(error, sqlite3.Error):
        return None
    passing = _PASSING.get(_primary_code(error) or 0)
    return passing[0] if passing else None


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


@dataclass
class InstanceState:
    """What the writer knows of one producer instance."""

    id: int
    uuid: str
    high_water: int  # every seq up to here is stored, lost or filtered
    filtered: int
    lost: int
    pid_indexed_seq: int  # its records up to here are in pid_index


# A LOG frame's fields, in the order ingest hands rows to Writer.commit; rows
# from the kernel's own log carry KMSG_COLUMNS after them.
ROW_COLUMNS = ("seq", "time_ns", "mono_ns", "level", "flags", "pid", "tid", "process", "message")
KMSG_COLUMNS = ("syslog_priority", "facility", "fields")
# Their PostgreSQL types, for binary COPY (see records).
COPY_TYPES = {
    "time_ns": "int8", "mono_ns": "int8", "level": "int2", "flags": "int2", "pid": "int4",
    "tid": "int8", "process": "text", "message": "text", "syslog_priority": "int2",
    "facility": "int2", "fields": "text",
}  # fmt: skip


class Writer:
    """The store's steady writer: the ingest daemon.  On SQLite the one
    writer; on PostgreSQL one of many (a daemon per host), each writing its
    own instances' records."""

    def __init__(self, engine: Engine, host: str | None = None) -> None:
        self.engine = engine
        self.host = host or socket.gethostname()
        self._inserts: dict[tuple[int, int], str] = {}
        self._postgresql = engine.dialect.name == "postgresql"

    def _insert_records(self, instance_id: int, width: int) -> str:
        """Driver-level executemany of the rows as they come off the wire,
        several times faster than SQLAlchemy's dict-per-row insert
        (../shared/notes): the instance is part of the statement, packed into
        the key with each row's seq.  OR IGNORE keeps replays idempotent."""
        statement = self._inserts.get((instance_id, width))
        if statement is None:
            columns = (ROW_COLUMNS + KMSG_COLUMNS)[1:width]
            statement = self._inserts[instance_id, width] = (
                f"INSERT OR IGNORE INTO records (id, {', '.join(columns)})"
                f" VALUES ({record_id(instance_id, 0)} | ?, {', '.join('?' for _ in columns)})"
            )
        return statement

    def _copy_records(self, connection: Connection, instance_id: int, rows: list[tuple]) -> None:
        """PostgreSQL's fastest bulk path: COPY, straight into records.

        Safe without a staging table: ingest hands over only seqs above the
        instance's high-water mark, which moves in the same transaction, and
        an instance is one daemon's (host, uuid), so a batch never meets a
        stored row.  Should two daemons claim one instance all the same, the
        key stops the COPY and the whole batch (nothing is acknowledged)."""
        columns = (ROW_COLUMNS + KMSG_COLUMNS)[1 : len(rows[0])]
        base = record_id(instance_id, 0)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        statement = f"COPY records (id, {', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        with cursor, cursor.copy(statement) as copy:
            # Binary: the server parses no text (about 13% faster than text here).
            copy.set_types(["int8", *(COPY_TYPES[column] for column in columns)])
            for row in rows:
                if "\x00" in row[8] or "\x00" in row[7]:
                    row = _without_nul(row)  # PostgreSQL's text cannot hold NUL
                copy.write_row((base + row[0], *row[1:]))

    def _instance(self, connection: Connection, uuid: str) -> Row | None:
        return connection.execute(
            select(
                instances.c.id,
                instances.c.high_water,
                instances.c.filtered,
                instances.c.pid_indexed_seq,
                instances.c.source,
            ).where(instances.c.host == self.host, instances.c.uuid == uuid)
        ).first()

    def register(
        self,
        uuid: str,
        *,
        first_seq: int,
        source: str,
        name: str,
        boot_id: str,
        producer_version: str,
        now_ns: int,
    ) -> InstanceState:
        """The instance's row (this host's), created on first sight: nothing
        accounted for before its first seq (1 for a kext, 0 for the kernel's
        own log).  Race-free when another daemon registers at the same
        moment: the database hands out the id, and (host, uuid) is unique."""
        with self.engine.begin() as connection:
            row = self._instance(connection, uuid)
            if row is None:
                new_id = connection.execute(
                    _insert_or_skip(connection, instances)
                    .values(
                        host=self.host,
                        uuid=uuid,
                        source=source,
                        name=name,
                        boot_id=boot_id,
                        producer_version=producer_version,
                        first_seen_ns=now_ns,
                        last_seen_ns=now_ns,
                        first_seq=first_seq,
                        high_water=first_seq - 1,
                        pid_indexed_seq=first_seq - 1,
                    )
                    .returning(instances.c.id)
                ).scalar()
                if new_id is not None:
                    if new_id > INSTANCES_MAX:
                        raise DatabaseError(
                            f"the store holds its maximum of {INSTANCES_MAX:,} instances"
                        )
                    return InstanceState(new_id, uuid, first_seq - 1, 0, 0, first_seq - 1)
                row = self._instance(connection, uuid)  # registered meanwhile
                assert row is not None
            connection.execute(
                update(instances)
                .where(instances.c.id == row.id)
                .values(source=source, last_seen_ns=now_ns)
            )
            lost = connection.execute(
                select(func.coalesce(func.sum(losses.c.count), 0)).where(
                    losses.c.instance_id == row.id
                )
            ).scalar_one()  # PostgreSQL sums bigints as numeric
            return InstanceState(
                row.id, uuid, row.high_water, row.filtered, int(lost), row.pid_indexed_seq
            )

    def known(self, uuid: str) -> Row | None:
        """The instance as stored (this host's): its high_water, up to which
        seq it is accounted for, and the source it was last read from; None
        if unknown."""
        with self.engine.connect() as connection:
            return self._instance(connection, uuid)

    def commit(
        self,
        rows: dict[int, list[tuple]],
        loss_rows: list[dict],
        states: list[InstanceState],
        now_ns: int,
    ) -> None:
        """One transaction: the records (by instance id, in ROW_COLUMNS
        order), the losses among them, and each instance's new high-water
        mark and filtered count."""
        with self.engine.begin() as connection:
            for instance_id, instance_rows in rows.items():
                if not instance_rows:
                    continue
                if self._postgresql:
                    self._copy_records(connection, instance_id, instance_rows)
                else:
                    statement = self._insert_records(instance_id, len(instance_rows[0]))
                    connection.exec_driver_sql(statement, instance_rows)
            if loss_rows:
                connection.execute(_insert_or_skip(connection, losses), loss_rows)
            if states:
                # In id order, as PidMerge takes them: two transactions that
                # lock the same rows lock them in the same order.
                connection.execute(
                    update(instances)
                    .where(instances.c.id == bindparam("state_id"))
                    .values(
                        high_water=bindparam("state_high_water"),
                        filtered=bindparam("state_filtered"),
                        last_seen_ns=now_ns,
                    ),
                    [
                        {
                            "state_id": state.id,
                            "state_high_water": state.high_water,
                            "state_filtered": state.filtered,
                        }
                        for state in sorted(states, key=lambda state: state.id)
                    ],
                )


def _insert_or_skip(connection: Connection, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, which both back ends speak."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table).on_conflict_do_nothing()


def _without_nul(row: tuple) -> tuple:
    return tuple(
        value.replace("\x00", "\ufffd") if isinstance(value, str) else value for value in row
    )


class PidMerge:
    """Brings pid_index up to date in one sorted pass per merge, in a
    thread of its own beside the writer, for the instances of its host.

    A random B-tree insert per record into a (pid, ...) index touches a page
    per distinct pid at every commit; merging many commits' records at once,
    sorted, touches each pid's run once.

    SQLite: merge() stages the committed records beyond each instance's
    pid_indexed_seq, sorted, in a temporary table (no lock on the store: the
    writer goes on meanwhile), then moves it into pid_index a slice at a
    time (a contiguous range of pids), each in a short transaction of its
    own, pausing in between so the writer's commits get the lock; the last
    one moves pid_indexed_seq.  PostgreSQL: one INSERT ... SELECT ... ORDER
    BY in one transaction; writers are not blocked by it (MVCC), so it
    needs no slices.  Until then queries find those records beyond
    pid_indexed_seq, as they find any not merged yet.

    Each merge has a connection of its own, closed after it (with its
    temporary tables and page cache): between merges the process holds no
    connection the writer does not, so that the writer's new connections
    after a store failure are new indeed (SQLite shares a file's open
    descriptors, read-only ones too, among a process's connections).
    """

    def __init__(self, engine: Engine, slice_rows: int, host: str) -> None:
        self._engine = engine
        self._slice_rows = slice_rows
        self._host = host

    def _targets(self, connection: Connection) -> list[Row]:
        """This host's instances with records beyond pid_indexed_seq, in id order."""
        return connection.execute(
            select(instances.c.id, instances.c.pid_indexed_seq, instances.c.high_water)
            .where(
                instances.c.host == self._host,
                instances.c.pid_indexed_seq < instances.c.high_water,
            )
            .order_by(instances.c.id)
        ).all()

    @staticmethod
    def _indexed(connection: Connection, targets: list[Row]) -> None:
        # Never lowered (another daemon may merge the same instance's records).
        for instance_id, _, high_water in targets:
            connection.execute(
                update(instances)
                .where(instances.c.id == instance_id, instances.c.pid_indexed_seq < high_water)
                .values(pid_indexed_seq=high_water)
            )

    def merge(self, pause: Callable[[float], object] = lambda _: None) -> int:
        """One merge; returns how many records it indexed.  pause(seconds)
        runs between slices (the caller's wait, which may end early)."""
        connection = self._engine.connect()
        try:
            if connection.dialect.name != "sqlite":
                return self._merge_at_once(connection)
            return self._merge_in_slices(connection, pause)
        finally:
            connection.invalidate()  # closed, not pooled
            connection.close()

    def _merge_in_slices(self, connection: Connection, pause: Callable[[float], object]) -> int:
        for table in ("pid_merge", "pid_sorted"):
            connection.exec_driver_sql(
                f"CREATE TEMP TABLE {table} (pid INTEGER, time_ns INTEGER, id INTEGER)"
            )
        connection.commit()
        with connection.begin():  # one snapshot of what is committed
            targets = self._targets(connection)
            for instance_id, indexed, high_water in targets:
                connection.exec_driver_sql(
                    "INSERT INTO pid_merge (pid, time_ns, id)"
                    " SELECT pid, time_ns, id FROM records WHERE id > ? AND id <= ?",
                    (record_id(instance_id, indexed), record_id(instance_id, high_water)),
                )
            # Sorted once: slices of consecutive rowids are then pid ranges.
            connection.exec_driver_sql(
                "INSERT INTO pid_sorted SELECT pid, time_ns, id FROM pid_merge"
                " ORDER BY pid, time_ns, id"
            )
            first, last = connection.exec_driver_sql(
                "SELECT min(rowid), max(rowid) FROM pid_sorted"
            ).one()
        if not targets:
            return 0
        first, last = first or 1, last or 0
        staged = last - first + 1
        while True:
            began = time.monotonic()
            end = min(first + self._slice_rows - 1, last)
            with connection.begin():
                connection.exec_driver_sql(
                    "INSERT OR IGNORE INTO pid_index (pid, time_ns, id)"
                    " SELECT pid, time_ns, id FROM pid_sorted WHERE rowid BETWEEN ? AND ?",
                    (first, end),
                )
                if end >= last:
                    self._indexed(connection, targets)
                    return staged
            first = end + 1
            pause(time.monotonic() - began)

    def _merge_at_once(self, connection: Connection) -> int:
        with connection.begin():
            targets = self._targets(connection)
            if not targets:
                return 0
            ranges = or_(
                *(
                    and_(
                        records.c.id > record_id(instance_id, indexed),
                        records.c.id <= record_id(instance_id, high_water),
                    )
                    for instance_id, indexed, high_water in targets
                )
            )
            sorted_rows = (
                select(records.c.pid, records.c.time_ns, records.c.id)
                .where(ranges)
                .order_by(records.c.pid, records.c.time_ns, records.c.id)
            )
            moved = connection.execute(
                _insert_or_skip(connection, pid_index).from_select(
                    ["pid", "time_ns", "id"], sorted_rows
                )
            ).rowcount
            self._indexed(connection, targets)
        return moved

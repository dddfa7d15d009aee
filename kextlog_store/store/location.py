"""Where the database lives, and who may reach it: the default location,
--db and KEXTLOG_DB (a path or a URL), and the directories and files of a
SQLite store, private to the daemon's user and an admin group and never
reachable through a path another user can steer (paths).
"""

from __future__ import annotations

import grp
import os
import stat
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

from .. import paths, redact
from ..errors import DatabaseError, Missing, UnsafePath, UsageError


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
        url = "sqlite:///" + os.path.abspath(os.path.expanduser(value))
    else:
        scheme, rest = value.split("://", 1)
        url = f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else value
    if (path := _sqlite_file(url)) is not None and path.is_dir():
        raise UsageError(f"{path} is a directory: name the database file, e.g. {path}/kextlog.db")
    return url


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (check_database has refused one without)."""
    from .engine import sqlite_path  # it imports this module

    return sqlite_path(url)


def check_database(value: str) -> None:
    """Refuses (UsageError) a database path or URL that kextlog cannot use:
    a NUL, a URL that does not parse, a back end or driver other than
    SQLite's and psycopg's, a SQLite URL without a file."""
    if "\x00" in value:
        raise UsageError("the database path has a NUL character")
    if "://" not in value:
        return
    # A URL only: a path's query never loads SQLAlchemy.
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import make_url

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


def _default_directories() -> tuple[Path, ...]:
    return system_database_path().parent, default_database_path().parent


# SQLite's own files beside the database, which it opens by name.
COMPANIONS = ("-wal", "-shm", "-journal")


def locate_database(path: Path, *, create: bool) -> tuple[paths.Directory, str]:
    """The database's directory and the file's name in it, where a link at
    path leads (paths.locate); refused when others could change either, or
    SQLite's files there.  A missing directory raises Missing, or with
    create a DatabaseError: only the default store's own directory is made
    (as private_directory makes it), as a typo in --db must not make a tree."""
    default = create and Path(os.path.abspath(path)).parent in _default_directories()
    try:
        directory, name = paths.locate(path, **_made_private(default))
        try:
            for suffix in ("", *COMPANIONS):
                info = directory.lstat(name + suffix)
                if info is not None:
                    paths.check_file(info, directory.path / (name + suffix))
        except BaseException:
            directory.close()
            raise
    except Missing as missing:
        if create:
            raise DatabaseError(f"cannot create the database {path}: {missing}") from None
        raise  # the caller's to tell: nothing to read, or nothing made yet
    except UnsafePath as error:
        raise DatabaseError(f"refusing the database {path}: {error}") from None
    return directory, name


def create_file(directory: paths.Directory, name: str) -> None:
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
    with suppress(Missing):
        locate_database(path, create=False)[0].close()

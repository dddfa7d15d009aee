"""Schema migrations (Alembic): `kextlog db upgrade`, `kextlog db current`,
and the upgrade ingest applies at start.  Kept apart from the read path,
which never imports Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect

from .. import migrations
from ..errors import DatabaseError
from .engine import read_engine, sqlite_path, write_engine

MIGRATIONS = Path(migrations.__file__).parent
# PostgreSQL advisory lock taken while upgrading: the bytes of "kextlog".
UPGRADE_LOCK = int.from_bytes(b"kextlog", "big")


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def _prepare_new_sqlite(connection: Connection) -> None:
    # Both are properties of the file that must be chosen before the first
    # table exists: incremental auto-vacuum lets prune give space back while
    # ingest runs (switching later needs a full VACUUM), and WAL lets readers
    # work beside the writer.
    if connection.exec_driver_sql("PRAGMA page_count").scalar() == 0:
        connection.exec_driver_sql("PRAGMA auto_vacuum = INCREMENTAL")
    connection.exec_driver_sql("PRAGMA journal_mode = WAL")


def upgrade(url: str, revision: str = "head") -> Engine:
    """Bring the database at url to revision (creating it if needed)."""
    engine = write_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Daemons of several hosts may start at once: one upgrades, the
            # others wait for its commit and find the schema up to date.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (UPGRADE_LOCK,))
        _check_known(connection, url)  # before anything changes the file
        if sqlite_path(url) is not None:
            _prepare_new_sqlite(connection)
        command.upgrade(_config(connection), revision)
        connection.commit()
    return engine


def downgrade(url: str, revision: str) -> None:
    with write_engine(url).connect() as connection:
        command.downgrade(_config(connection), revision)
        connection.commit()


def current(url: str) -> str | None:
    """The revision the database is at, None for an empty database; asking
    never creates one."""
    engine = read_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _check_known(connection: Connection, url: str) -> None:
    """Refuse a database this kextlog cannot manage: another program's, or
    one from a newer kextlog.  Neither is ever changed."""
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None:
        if set(inspect(connection).get_table_names()) - {"alembic_version"}:
            raise DatabaseError(f"{url}: not a kextlog database (it has tables but no revision)")
        return
    try:
        ScriptDirectory(str(MIGRATIONS)).get_revision(revision)
    except CommandError:
        raise DatabaseError(
            f"{url}: schema revision {revision} is newer than this kextlog knows; upgrade kextlog"
        ) from None

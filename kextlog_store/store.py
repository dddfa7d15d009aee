"""The store: schema, where the database lives, and how it is opened.

SQLAlchemy Core tables are the one description of the schema; Alembic
revisions in migrations/ are the only way it changes.  Times are integers in
nanoseconds (UTC since the epoch for wall-clock times), so they sort and
compare exactly; the readable view `log` renders them.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    make_url,
    select,
    update,
)

from .errors import DatabaseError

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
    Column("uuid", Text, nullable=False, unique=True),  # HELLO's instance id, 32 hex digits
    Column("source", Text, nullable=False),  # where ingest read it, e.g. unix:/run/sim.sock
    Column("name", Text, nullable=False),  # the producer's own name (kext bundle id)
    Column("boot_id", Text, nullable=False),
    Column("producer_version", Text, nullable=False),
    Column("first_seen_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
    # Every seq up to high_water is stored, lost or filtered; pruning never lowers it.
    Column("high_water", BigInteger, nullable=False, server_default="0"),
    Column("filtered", BigInteger, nullable=False, server_default="0"),
)

records = Table(
    "records",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("instance_id", RowId, ForeignKey("instances.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("time_ns", BigInteger, nullable=False),
    Column("mono_ns", BigInteger, nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("flags", SmallInteger, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("tid", BigInteger, nullable=False),
    Column("process", Text, nullable=False),
    Column("message", Text, nullable=False),
    UniqueConstraint("instance_id", "seq"),
    Index(None, "time_ns"),
    Index(None, "level", "time_ns"),
    Index(None, "pid", "time_ns"),
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


def database_url(db: str | None = None) -> str:
    """--db, else KEXTLOG_DB, else the default location; a value with :// is a URL."""
    value = db or os.environ.get("KEXTLOG_DB") or str(default_database_path())
    if "://" in value:
        return value
    return "sqlite:///" + os.path.abspath(os.path.expanduser(value))


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, None for other back ends."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise DatabaseError(f"{url}: kextlog needs a database file")
    return Path(parsed.database)


def _tune_sqlite(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # The daemon is the one steady writer; readers and maintenance wait their
    # turn (busy timeout) instead of failing with "database is locked".
    dbapi_connection.execute("PRAGMA busy_timeout = 10000")
    dbapi_connection.execute("PRAGMA synchronous = NORMAL")


def write_engine(url: str) -> Engine:
    """An engine that may create and change the database."""
    path = sqlite_path(url)
    if path is None:
        return create_engine(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    event.listen(engine, "connect", _tune_sqlite)
    return engine


def read_engine(url: str) -> Engine:
    """A read-only engine on an existing database; it never creates one."""
    path = sqlite_path(url)
    if path is None:
        return create_engine(url)
    if not path.exists():
        raise DatabaseError(
            f"no kextlog database at {path} (start `kextlog ingest` or pass --db / KEXTLOG_DB)"
        )
    uri = f"file:{quote(str(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect)
    event.listen(engine, "connect", _tune_sqlite)
    return engine


@dataclass
class InstanceState:
    """What the writer knows of one producer instance."""

    id: int
    uuid: str
    high_water: int  # every seq up to here is stored, lost or filtered
    filtered: int
    lost: int


class Writer:
    """The store's one steady writer: the ingest daemon."""

    RECORD_COLUMNS = tuple(column.name for column in records.columns if column.name != "id")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Driver-level executemany of tuples: several times faster than
        # SQLAlchemy's dict-per-row insert (../shared/notes).  Replays are
        # idempotent through UNIQUE (instance_id, seq).
        columns = ", ".join(self.RECORD_COLUMNS)
        marks = ", ".join("?" for _ in self.RECORD_COLUMNS)
        self._insert_records = f"INSERT OR IGNORE INTO records ({columns}) VALUES ({marks})"

    def register(
        self, uuid: str, *, source: str, name: str, boot_id: str, producer_version: str, now_ns: int
    ) -> InstanceState:
        """The instance's row, created on first sight."""
        with self.engine.begin() as connection:
            row = connection.execute(
                select(instances.c.id, instances.c.high_water, instances.c.filtered).where(
                    instances.c.uuid == uuid
                )
            ).first()
            if row is not None:
                connection.execute(
                    update(instances)
                    .where(instances.c.id == row.id)
                    .values(source=source, last_seen_ns=now_ns)
                )
                lost = connection.execute(
                    select(func.coalesce(func.sum(losses.c.count), 0)).where(
                        losses.c.instance_id == row.id
                    )
                ).scalar_one()
                return InstanceState(row.id, uuid, row.high_water, row.filtered, lost)
            new_id = connection.execute(
                insert(instances).values(
                    uuid=uuid,
                    source=source,
                    name=name,
                    boot_id=boot_id,
                    producer_version=producer_version,
                    first_seen_ns=now_ns,
                    last_seen_ns=now_ns,
                )
            ).inserted_primary_key[0]
            return InstanceState(new_id, uuid, 0, 0, 0)

    def high_water(self, uuid: str) -> int:
        with self.engine.connect() as connection:
            value = connection.execute(
                select(instances.c.high_water).where(instances.c.uuid == uuid)
            ).scalar()
        return value or 0

    def commit(
        self,
        rows: list[tuple],
        loss_rows: list[dict],
        states: list[InstanceState],
        now_ns: int,
    ) -> None:
        """One transaction: the records, the losses among them, and each
        instance's new high-water mark and filtered count."""
        with self.engine.begin() as connection:
            if rows:
                connection.exec_driver_sql(self._insert_records, rows)
            if loss_rows:
                connection.execute(insert(losses).prefix_with("OR IGNORE"), loss_rows)
            if states:
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
                        for state in states
                    ],
                )

"""The daemon's writes: an instance registered on first sight, and one
transaction per batch of records, its losses and its instances' marks."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Row, Table, bindparam, func, select, update

from ..errors import DatabaseError
from ..records import KMSG_FIELDS, LEVEL, MESSAGE, PID, PROCESS, ROW_FIELDS, SEQ, TIME_NS
from .schema import INSTANCES_MAX, NS_PER_MINUTE, instances, losses, record_id

if TYPE_CHECKING:
    from ..seal.chain import Sealer


@dataclass
class InstanceState:
    """What the writer knows of one producer instance."""

    id: int
    uuid: str
    high_water: int  # every seq up to here is stored, lost or filtered
    filtered: int
    lost: int
    pid_indexed_seq: int  # its records up to here are in pid_index


# The records table's columns a row fills (records.ROW_FIELDS, and
# KMSG_FIELDS after them in a row of the kernel's own log): a row of width n
# fills the first n, its seq going into the key.
COLUMNS = ROW_FIELDS + KMSG_FIELDS
_time_ns, _level = itemgetter(TIME_NS), itemgetter(LEVEL)
_pid, _process = itemgetter(PID), itemgetter(PROCESS)
# Their PostgreSQL types, for binary COPY (see schema.records).
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
        # When the store is sealed (ingest.daemon sets it): each batch extends
        # the chain in its own transaction.
        self.sealer: Sealer | None = None

    def _insert_records(self, instance_id: int, width: int) -> str:
        """Driver-level executemany of the rows as they come off the wire,
        several times faster than SQLAlchemy's dict-per-row insert
        (../shared/notes): the instance is part of the statement, packed into
        the key with each row's seq.  OR IGNORE keeps replays idempotent."""
        statement = self._inserts.get((instance_id, width))
        if statement is None:
            columns = COLUMNS[1:width]
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
        columns = COLUMNS[1 : len(rows[0])]
        base = record_id(instance_id, 0)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        statement = f"COPY records (id, {', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        with cursor, cursor.copy(statement) as copy:
            # Binary: the server parses no text (about 13% faster than text here).
            copy.set_types(["int8", *(COPY_TYPES[column] for column in columns)])
            for row in rows:
                if "\x00" in row[MESSAGE] or "\x00" in row[PROCESS]:
                    row = _without_nul(row)  # PostgreSQL's text cannot hold NUL
                copy.write_row((base + row[SEQ], *row[SEQ + 1 :]))

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
                    insert_or_skip(connection, instances)
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
        """One transaction: the records (rows by instance id, see COLUMNS),
        their counters, the losses among them, and each instance's new
        high-water mark and filtered count."""
        counts = Counts()
        with self.engine.begin() as connection:
            if self.sealer is not None:
                self.sealer.extend(connection, rows, loss_rows, states)
            for instance_id, instance_rows in rows.items():
                if not instance_rows:
                    continue
                if self._postgresql:
                    self._copy_records(connection, instance_id, instance_rows)
                else:
                    statement = self._insert_records(instance_id, len(instance_rows[0]))
                    connection.exec_driver_sql(statement, instance_rows)
                counts.add(instance_id, instance_rows, nul_free=self._postgresql)
            add_counts(connection, counts)
            if loss_rows:
                connection.execute(insert_or_skip(connection, losses), loss_rows)
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


@dataclass
class Counts:
    """Records by the buckets of the counters (negative: records removed):
    record_counts' (minute, level, instance id) and pid_counts' (pid,
    process, instance id)."""

    minutes: Counter[tuple[int, int, int]] = field(default_factory=Counter)
    pids: Counter[tuple[int, str, int]] = field(default_factory=Counter)

    def add(self, instance_id: int, rows: list[tuple], *, nul_free: bool = False) -> None:
        """Adds the records of rows (ingest's, see COLUMNS).  A batch mostly
        lies within one minute: then counting its levels, in C, is enough
        (half the cost of a key per record, which the rest pay).  nul_free:
        processes as PostgreSQL stores them (see Writer._copy_records)."""
        first = min(map(_time_ns, rows)) // NS_PER_MINUTE
        if max(map(_time_ns, rows)) // NS_PER_MINUTE == first:
            for level, count in Counter(map(_level, rows)).items():
                self.minutes[first, level, instance_id] += count
        else:
            self.minutes.update(
                (row[TIME_NS] // NS_PER_MINUTE, row[LEVEL], instance_id) for row in rows
            )
        # Counted in C: a key per record, made by zip.
        self.pids.update(zip(map(_pid, rows), map(_process, rows), repeat(instance_id)))
        if nul_free:
            for key in [key for key in self.pids if "\x00" in key[1]]:
                pid, process, instance = key
                self.pids[pid, process.replace("\x00", "\ufffd"), instance] += self.pids.pop(key)


def add_counts(connection: Connection, counts: Counts) -> None:
    """Adds counts to the counters in the caller's transaction, a statement
    per bucket and never per record; a bucket left at 0 goes.  record_counts
    first, then pid_counts."""
    _add(connection, "record_counts", ("minute", "level", "instance_id"), counts.minutes)
    _add(connection, "pid_counts", ("pid", "process", "instance_id"), counts.pids)


def _add(
    connection: Connection, table: str, key: tuple[str, ...], counts: Mapping[tuple, int]
) -> None:
    if not counts:
        return
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    columns, values = ", ".join(key), ", ".join(marker for _ in range(len(key) + 1))
    # PostgreSQL: in key order, so that two transactions that lock the same
    # buckets lock them alike.  (SQLite has one writer at a time.)
    buckets = sorted(counts) if connection.dialect.name == "postgresql" else list(counts)
    connection.exec_driver_sql(
        f"INSERT INTO {table} ({columns}, count) VALUES ({values})"
        f" ON CONFLICT ({columns}) DO UPDATE SET count = {table}.count + excluded.count",
        # (*bucket, count) of each, made in C: a batch has thousands of pids.
        list(map(add, buckets, zip(map(counts.__getitem__, buckets)))),
    )
    if min(counts.values()) < 0:
        emptied = [bucket for bucket in buckets if counts[bucket] < 0]
        keys = " AND ".join(f"{column} = {marker}" for column in key)
        connection.exec_driver_sql(f"DELETE FROM {table} WHERE {keys} AND count = 0", emptied)


def insert_or_skip(connection: Connection, table: Table) -> Any:
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

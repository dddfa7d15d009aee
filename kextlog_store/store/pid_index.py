"""pid_index, the records by pid, brought up to date by sorted merges
beside the writer (ingest runs them now and then)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, Row, and_, or_, select, update
from sqlalchemy import exc as sa_exc

from .errors import translate
from .schema import instances, pid_index, record_id, records
from .writer import insert_or_skip


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
        runs between slices (the caller's wait, which may end early).
        Errors of the database raise DatabaseError."""
        try:
            connection = self._engine.connect()
            try:
                if connection.dialect.name != "sqlite":
                    return self._merge_at_once(connection)
                return self._merge_in_slices(connection, pause)
            finally:
                connection.invalidate()  # closed, not pooled
                connection.close()
        except sa_exc.DBAPIError as error:
            raise translate(error) from None

    def _merge_in_slices(self, connection: Connection, pause: Callable[[float], object]) -> int:
        # Sorted inserts touch few pages at a time: a small cache does, and
        # the daemon does not hold a second writer's (ingest RSS <= 150 MB).
        connection.exec_driver_sql("PRAGMA cache_size = -4096")
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
                insert_or_skip(connection, pid_index).from_select(
                    ["pid", "time_ns", "id"], sorted_rows
                )
            ).rowcount
            self._indexed(connection, targets)
        return moved

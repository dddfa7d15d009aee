"""Retention: removing old records, by age per level and to fit a size,
while ingest keeps committing.

`kextlog prune` applies a RetentionPolicy once; the ingest daemon applies
its own now and then.  Both call apply().

How it stays out of ingest's way: it deletes in small transactions (at most
batch_rows records each, one DELETE statement first, so the write lock is
taken at once and never by upgrading a read), and after each it pauses for
as long as the transaction took, so that ingest, waiting in SQLite's busy
handler, gets the lock at least every other turn.  Space goes back to the
file system with PRAGMA incremental_vacuum (the store is created with
auto_vacuum=INCREMENTAL), in chunks of pages, the same way.

What it removes: records (with their pid_index entries), and loss rows that
no longer stand among stored records (see apply()).  No high-water mark
moves: each delete counts what it removed in its instance's row
(instances.pruned_records, pruned_lost), in the same transaction, so every
seq is still accounted for, by a count of its own (a row that goes any
other way shows as a discrepancy: stats, `kextlog db check`).
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, exists, func, select, update
from sqlalchemy import exc as sa_exc

from ..errors import UsageError
from ..levels import Level, parse_level, parse_level_range
from ..seal import chain as seal
from ..timespec import parse_duration
from . import schema
from .engine import read_engine, write_engine
from .errors import translate
from .writer import Counts, add_counts

_records, _losses, _instances = schema.records, schema.losses, schema.instances

BATCH_ROWS = 10_000  # records per transaction
VACUUM_PAGES = 2_000  # pages per incremental_vacuum transaction (8 MB of 4 KB pages)
MIN_PAUSE = 0.02  # seconds between transactions at the least

_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """A size in bytes: 500000, 100K, 512MB, 2GB, 1.5GiB.  Units are powers
    of 1024 however they are written (K, KB and KiB alike), as journalctl's
    --vacuum-size."""
    match = _SIZE.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(f"invalid size {text!r}: expected e.g. 2GB, 500MB, 100K")
    size = int(Decimal(match["number"]) * _UNITS[match["unit"]])
    if size >= 1 << 63:  # what SQLite and PostgreSQL count in
        raise UsageError(f"invalid size {text!r}: more than 8 EiB")
    return size


@dataclass(frozen=True)
class RetentionPolicy:
    """What to keep.

    max_age_ns: per level, how old its records may get; a level missing
    here is kept for ever.  max_size_bytes: the most the database may take
    (its pages in use, which is what the file shrinks to once the freed
    pages are reclaimed; the -wal file is not counted); None for no cap.
    """

    max_age_ns: Mapping[Level, int] = field(default_factory=dict)
    max_size_bytes: int | None = None
    batch_rows: int = BATCH_ROWS

    def __post_init__(self) -> None:
        if any(age < 0 for age in self.max_age_ns.values()):
            raise UsageError("a maximum age cannot be negative")
        if self.max_size_bytes is not None and self.max_size_bytes <= 0:
            raise UsageError("the size cap must be more than 0 bytes")
        if self.batch_rows < 1:
            raise UsageError("batch_rows must be 1 or more")

    @classmethod
    def older_than(
        cls,
        age_ns: int | None = None,
        levels: tuple[Level, Level] | None = None,
        max_size_bytes: int | None = None,
    ) -> RetentionPolicy:
        """`kextlog prune --older-than AGE [--level RANGE] [--max-size SIZE]`."""
        low, high = levels or (min(Level), max(Level))
        ages = {} if age_ns is None else {lv: age_ns for lv in Level if low <= lv <= high}
        return cls(ages, max_size_bytes)

    @classmethod
    def parse(cls, ages: str = "", max_size: str | None = None) -> RetentionPolicy:
        """A policy from text, e.g. for a daemon's option:
        ages "trace..debug=1d,info=30d,warning..error=365d" (a level on its
        own means that level alone here, a range A..B the levels from A to
        B; each level at most once), max_size "2GB" (parse_size)."""
        max_age: dict[Level, int] = {}
        for item in filter(None, (part.strip() for part in ages.split(","))):
            spec, equals, age = item.partition("=")
            if not equals:
                raise UsageError(f"invalid retention {item!r}: expected LEVEL=AGE, e.g. info=30d")
            if ".." in spec:
                low, high = parse_level_range(spec)
            else:
                low = high = parse_level(spec)
            for level in Level:
                if low <= level <= high:
                    if level in max_age:
                        raise UsageError(f"retention: {level.label} is given twice")
                    max_age[level] = parse_duration(age)
        return cls(max_age, None if max_size is None else parse_size(max_size))


def check(engine: Engine, policy: RetentionPolicy) -> None:
    """Raises UsageError for a policy the store behind engine cannot apply.

    A size cap is SQLite's: PostgreSQL's files do not shrink when rows go
    (VACUUM makes the space reusable), and without extensions the space rows
    take cannot be told from the free space around them."""
    if engine.dialect.name != "sqlite" and policy.max_size_bytes is not None:
        raise UsageError(
            "--max-size measures a SQLite store's pages in use; on PostgreSQL "
            "prune by age (--older-than, --retain)"
        )


@dataclass
class PruneResult:
    records: dict[int, int] = field(default_factory=dict)  # records removed, by level number
    losses: int = 0  # loss rows removed
    size_before: int = 0  # bytes in pages in use, before
    size_after: int = 0  # ... and after
    file_before: int = 0  # bytes in all the database's pages (the file after a checkpoint)
    file_after: int = 0  # ... after reclaiming
    # Whether the records there when prune began were pruned to the size cap
    # (None: no cap); size_after can be above it when another writer (ingest,
    # its pid index) added pages since.
    fits: bool | None = None
    stopped: bool = False  # stop was set before the end

    @property
    def removed(self) -> int:
        return sum(self.records.values())


def apply(
    engine: Engine,
    policy: RetentionPolicy,
    *,
    now_ns: int | None = None,
    stop: threading.Event | None = None,
) -> PruneResult:
    """Apply policy once to the store behind engine; return what it removed.

    1. By age: each level's records older than now_ns minus its age, oldest
       first.
    2. By size: the oldest records of any level, until the pages in use fit
       max_size_bytes, or every record that was there when it began is gone.
    3. Losses: a loss row is removed once it lies before every record that
       is left of its instance (no stored record has a lower seq: it no
       longer stands among records) and its time (last_time_ns, else when it
       was recorded) is before the time up to which every level was pruned:
       the longest age when the policy ages every level, and the newest
       record the size cap removed.  A loss among records that are still
       stored is never removed.
    4. The freed pages go back to the file system (SQLite, incremental
       auto-vacuum), and a passive checkpoint lets the file shrink now;
       PostgreSQL: a VACUUM makes the space reusable.

    stop: set it to end early, between two transactions (result.stopped).
    max_size_bytes is for SQLite stores (UsageError on PostgreSQL); errors
    of the database raise DatabaseError.
    """
    run = _Run(engine, policy, stop)
    now_ns = time.time_ns() if now_ns is None else now_ns
    try:
        return run.apply(now_ns)
    except (sa_exc.DBAPIError, sqlite3.Error) as exc:
        raise translate(exc) from None


def prune(url: str, policy: RetentionPolicy) -> PruneResult:
    """`kextlog prune`: apply policy once to the store at url, which must
    exist (a missing store is an error, never created)."""
    read_engine(url).dispose()
    engine = write_engine(url)
    try:
        return apply(engine, policy)
    finally:
        engine.dispose()


class _Run:
    def __init__(self, engine: Engine, policy: RetentionPolicy, stop: threading.Event | None):
        self.engine = engine
        self.policy = policy
        self.stop = stop
        self.result = PruneResult()

    def apply(self, now_ns: int) -> PruneResult:
        result, policy = self.result, self.policy
        check(self.engine, policy)
        result.size_before, result.file_before = self._size()
        everything_before: int | None = None
        by_age: dict[int, list[Level]] = {}
        for level, age in policy.max_age_ns.items():
            by_age.setdefault(age, []).append(level)
        for age, levels in sorted(by_age.items()):
            self._delete_records(sorted(levels), before_ns=now_ns - age)
        if set(policy.max_age_ns) == set(Level):
            everything_before = now_ns - max(policy.max_age_ns.values())
        if policy.max_size_bytes is not None:
            newest, result.fits = self._fit(policy.max_size_bytes)
            if newest is not None:
                everything_before = (
                    newest if everything_before is None else max(newest, everything_before)
                )
        if everything_before is not None and not self._stopped():
            self._delete_losses(everything_before)
        self._reclaim()
        result.size_after, result.file_after = self._size()
        result.stopped = self._stopped()
        return result

    # -- records ---------------------------------------------------------

    def _delete_records(self, levels: list[Level], *, before_ns: int) -> None:
        """Every record of levels older than before_ns, oldest first."""
        terms: list[Any] = [_records.c.time_ns < before_ns]
        if levels != sorted(Level):
            numbers = [int(level) for level in levels]
            terms.append(_records.c.level.in_(numbers))
            if min(numbers) >= Level.WARNING:
                terms.append(_records.c.level >= int(Level.WARNING))  # the partial level index
        from_ns: int | None = None
        while not self._stopped():
            # From the oldest record removed last: the walk along the time
            # index does not read again what earlier batches kept.
            walk = terms if from_ns is None else [*terms, _records.c.time_ns >= from_ns]
            removed = self._delete_oldest(walk, self.policy.batch_rows)
            if removed is None:
                return
            from_ns = removed

    def _fit(self, max_bytes: int) -> tuple[int | None, bool]:
        """The oldest records until the pages in use fit max_bytes; the time
        of the newest record it removed (None: none), and whether they fit."""
        with self.engine.connect() as connection:
            used = self._used(connection)
            if used <= max_bytes:
                return None, True
            count, newest_ns = connection.execute(
                select(func.count(), func.max(_records.c.time_ns))
            ).one()
        removed_ns = None
        # Only what was there at the start: a faster ingest is never chased.
        terms = [_records.c.time_ns <= (newest_ns if newest_ns is not None else 0)]
        while used > max_bytes and count > 0 and not self._stopped():
            # As many of the oldest records as take up the excess, on average.
            rows = math.ceil((used - max_bytes) * count / used)
            walk = terms if removed_ns is None else [*terms, _records.c.time_ns >= removed_ns]
            last = self._delete_oldest(walk, max(1, min(rows, self.policy.batch_rows)))
            if last is None:
                break
            removed_ns = last
            with self.engine.connect() as connection:
                used = self._used(connection)
                count = connection.execute(select(func.count()).select_from(_records)).scalar_one()
        return removed_ns, used <= max_bytes

    def _delete_oldest(self, terms: list[Any], limit: int) -> int | None:
        """One transaction: the oldest `limit` records matching terms, and
        their pid_index entries.  The time of the newest removed, or None
        when nothing matched."""
        oldest = (
            select(_records.c.id)
            .where(*terms)
            .order_by(_records.c.time_ns, _records.c.id)
            .limit(limit)
        )
        statement = (
            delete(_records)
            .where(_records.c.id.in_(oldest.scalar_subquery()))
            .returning(
                _records.c.id,
                _records.c.pid,
                _records.c.time_ns,
                _records.c.level,
                _records.c.process,
            )
        )
        started = time.monotonic()
        with self.engine.begin() as connection:
            rows = connection.execute(statement).all()
            if rows:
                # Driver-level executemany: a search of pid_index's key each,
                # without SQLAlchemy's dict per row (half the cost of a batch).
                marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
                connection.exec_driver_sql(
                    f"DELETE FROM pid_index WHERE pid = {marker} AND time_ns = {marker}"
                    f" AND id = {marker}",
                    [(row[1], row[2], row[0]) for row in rows],
                )
                # The chain, the counters, then the instances: ingest's
                # commits lock them in that order (else two deadlock).
                seal.checkpoint(
                    connection, "records", (divmod(row[0], schema.SEQ_MASK + 1) for row in rows)
                )
                add_counts(connection, _uncounted(rows))
                removed = Counter(row[0] >> schema.SEQ_BITS for row in rows)
                _count(connection, "pruned_records", removed)
        if not rows:
            return None
        for row in rows:
            self.result.records[row[3]] = self.result.records.get(row[3], 0) + 1
        self._pause(time.monotonic() - started)
        return max(row[2] for row in rows)

    # -- losses ----------------------------------------------------------

    def _delete_losses(self, before_ns: int) -> None:
        records, losses = _records.alias("r"), _losses
        first = losses.c.instance_id.op("<<")(schema.SEQ_SHIFT)
        earlier_record = exists().where(
            records.c.id > first, records.c.id < first.op("|")(losses.c.first_seq)
        )
        stale = (
            select(losses.c.id)
            .where(
                func.coalesce(losses.c.last_time_ns, losses.c.recorded_ns) < before_ns,
                ~earlier_record,
            )
            .limit(self.policy.batch_rows)
        )
        while not self._stopped():
            started = time.monotonic()
            with self.engine.begin() as connection:
                gone = connection.execute(
                    delete(losses)
                    .where(losses.c.id.in_(stale.scalar_subquery()))
                    .returning(losses.c.instance_id, losses.c.count, losses.c.first_seq)
                ).all()
                if gone:
                    lost: Counter[int] = Counter()
                    for instance_id, count, _ in gone:
                        lost[instance_id] += count
                    seal.checkpoint(connection, "losses", ((row[0], row[2]) for row in gone))
                    _count(connection, "pruned_lost", lost)
            removed = len(gone)
            self.result.losses += removed
            if removed < self.policy.batch_rows:
                return
            self._pause(time.monotonic() - started)

    # -- space -----------------------------------------------------------

    def _reclaim(self) -> None:
        """Freed pages back to the file system, VACUUM_PAGES at a time
        (SQLite).  PostgreSQL: a plain VACUUM of what was pruned, which
        makes the space reusable by the next records (its files keep their
        size) and blocks no writer."""
        if self.engine.dialect.name != "sqlite":
            if self.result.removed or self.result.losses:
                with self.engine.connect() as connection:
                    connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                        "VACUUM records, pid_index, losses"
                    )
            return
        fairy = self.engine.raw_connection()
        try:
            driver = fairy.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            if driver.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                return  # not incremental: the free pages stay for the next writes
            free = driver.execute("PRAGMA freelist_count").fetchone()[0]
            # As many rounds as there were free pages: another writer that
            # frees pages meanwhile cannot keep it going.
            for _ in range(math.ceil(free / VACUUM_PAGES)):
                if self._stopped():
                    break
                started = time.monotonic()
                # executescript runs the pragma to the end; execute() would
                # free one page per call.
                driver.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES})")
                self._pause(time.monotonic() - started)
            # The file shrinks at a checkpoint; a passive one waits for no one.
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            fairy.close()

    def _size(self) -> tuple[int, int]:
        """Bytes in pages in use, and in all the database's pages
        (PostgreSQL: the bytes of kextlog's tables and their indexes, both)."""
        with self.engine.connect() as connection:
            if connection.dialect.name != "sqlite":
                size = connection.exec_driver_sql(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                ).scalar_one()
                return int(size or 0), int(size or 0)
            page_size = self._pragma(connection, "page_size")
            return self._used(connection), page_size * self._pragma(connection, "page_count")

    def _used(self, connection: Connection) -> int:
        pages = self._pragma(connection, "page_count") - self._pragma(connection, "freelist_count")
        return pages * self._pragma(connection, "page_size")

    @staticmethod
    def _pragma(connection: Connection, name: str) -> int:
        return int(connection.exec_driver_sql(f"PRAGMA {name}").scalar_one())

    # -- pacing ----------------------------------------------------------

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _pause(self, busy: float) -> None:
        """As long as the last transaction held the write lock (at least
        MIN_PAUSE), so a waiting ingest gets its turn."""
        seconds = max(busy, MIN_PAUSE)
        if self.stop is not None:
            self.stop.wait(seconds)
        else:
            time.sleep(seconds)


def _uncounted(rows: list[Any]) -> Counts:
    """What deleted records (id, pid, time_ns, level, process) take from
    the counters."""
    counts = Counts()
    for key, pid, time_ns, level, process in rows:
        instance_id = key >> schema.SEQ_BITS
        counts.minutes[time_ns // schema.NS_PER_MINUTE, level, instance_id] -= 1
        counts.pids[pid, process, instance_id] -= 1
    return counts


def _count(connection: Connection, column: str, removed: Counter[int]) -> None:
    """Adds what a delete removed, by instance id, to the instances' column
    (pruned_records or pruned_lost), in the delete's transaction; in id
    order, as the writer locks instances."""
    connection.execute(
        update(_instances)
        .where(_instances.c.id == bindparam("instance"))
        .values({column: _instances.c[column] + bindparam("amount")}),
        [{"instance": key, "amount": removed[key]} for key in sorted(removed)],
    )

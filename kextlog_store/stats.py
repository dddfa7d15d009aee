"""`kextlog stats`: what the store holds, in figures.

Records per level and per process, the rate over time in buckets (by
level), the losses by reason, every instance with its accounting, the size
of the database and the range of dates.  One collect() call reads them all
in one read transaction (one snapshot: the figures agree with each other
while ingest commits).  Records per level, per bucket and per instance add
up the counters (record_counts: a row per minute, level and instance),
counting records only in the minutes a window cuts (and every record of
the window for buckets shorter than a minute).  Per process, the whole
store adds up pid_counts (a row per pid, process and instance); a window
counts its records.  Rendering is render.figures.write_stats.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select, text, true
from sqlalchemy import exc as sa_exc

from .conditions import DIALECTS, Sql
from .errors import UsageError
from .levels import Level
from .query import select_losses
from .redact import redact
from .store import schema
from .store.engine import read_engine, sqlite_path
from .store.errors import translate
from .timespec import NS_PER_SECOND

_records, _instances, _losses = schema.records, schema.instances, schema.losses
_counters, NS_PER_MINUTE = schema.record_counts, schema.NS_PER_MINUTE

# Bucket sizes the rate chart picks from: the smallest that gives at most
# max_buckets rows.  Round sizes, so that bucket starts are round times.
_MINUTE, _HOUR, _DAY = 60 * NS_PER_SECOND, 3600 * NS_PER_SECOND, 86400 * NS_PER_SECOND
BUCKET_SIZES = (
    tuple(seconds * NS_PER_SECOND for seconds in (1, 2, 5, 10, 15, 30))
    + tuple(minutes * _MINUTE for minutes in (1, 2, 5, 10, 15, 30))
    + tuple(hours * _HOUR for hours in (1, 2, 3, 6, 12))
    + tuple(days * _DAY for days in (1, 2, 7, 14, 30, 91, 365))
)
MAX_BUCKETS = 24
MAX_CHART_BUCKETS = 10_000  # what --bucket may ask for: a line each


@dataclass(frozen=True)
class DatabaseSize:
    """The SQLite file, page by page (PostgreSQL: the database's blocks)."""

    path: str
    file_bytes: int  # the database file
    wal_bytes: int  # its -wal file (0 when there is none)
    page_size: int
    page_count: int  # the database's size in pages (what the file has after a checkpoint)
    free_pages: int  # pages on the freelist: reused by the next writes, or reclaimed by prune


@dataclass(frozen=True)
class ProcessCount:
    process: str
    records: int
    pids: int  # distinct pids that had this name


@dataclass(frozen=True)
class Bucket:
    start_ns: int
    counts: tuple[int, ...]  # records of each level, TRACE..ERROR

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class LossCount:
    reason: str  # as the losses table stores it (ring-full, released, gap)
    losses: int  # rows
    records: int  # records lost


@dataclass(frozen=True)
class InstanceAccount:
    """One instance and what became of its seqs first_seq..high_water (a
    kext's start at 1, the kernel's own log's at 0): each is stored, lost,
    filtered or pruned, exactly once (the delivery contract).  Each is
    counted on its own (pruned: as prune removed them), so discrepancy, the
    seqs none of them covers, is 0 unless a row went another way (negative:
    counted twice)."""

    instance: str
    source: str
    name: str
    boot_id: str
    producer_version: str
    first_seen_ns: int
    last_seen_ns: int
    first_seq: int
    high_water: int
    stored: int  # records with seq <= high_water
    lost: int  # records the losses table accounts for
    filtered: int  # dropped on purpose by ingest's --min-level
    pruned_records: int  # records prune removed
    pruned_lost: int  # seqs of the loss rows prune removed
    ahead: int  # records stored beyond high_water (before a gap ingest still waits to fill)
    first_record_ns: int | None  # the time of its lowest stored seq
    last_record_ns: int | None  # the time of its highest stored seq

    @property
    def pruned(self) -> int:
        """Seqs whose rows prune removed."""
        return self.pruned_records + self.pruned_lost

    @property
    def discrepancy(self) -> int:
        """Seqs up to high_water that no count covers (negative: counted twice)."""
        expected = self.high_water - self.first_seq + 1
        return expected - self.stored - self.lost - self.filtered - self.pruned


@dataclass(frozen=True)
class Stats:
    database: DatabaseSize | None
    since_ns: int | None  # the window asked for (None: open)
    until_ns: int | None
    records: int  # in the window
    first_ns: int | None  # the oldest and newest record in the window
    last_ns: int | None
    levels: tuple[int, ...]  # records of each level in the window, TRACE..ERROR
    processes: tuple[ProcessCount, ...]  # the top ones, most records first
    process_names: int  # distinct process names in the window
    bucket_ns: int  # the rate chart's bucket size
    buckets: tuple[Bucket, ...]  # from the first record's bucket to the last's
    losses: tuple[LossCount, ...]  # placed in the window, by reason
    instances: tuple[InstanceAccount, ...]  # every instance (not windowed), oldest first


def collect(
    url: str,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    top: int = 10,
    bucket_ns: int | None = None,
    max_buckets: int = MAX_BUCKETS,
    utc: bool = False,
) -> Stats:
    """The figures of the store at url, records and losses within
    [since_ns, until_ns] (both included, None for open).  bucket_ns: the
    rate chart's bucket size (default: the smallest of BUCKET_SIZES that
    gives at most max_buckets buckets).  Buckets start at multiples of
    their size in local time (or UTC), so that hours and days begin on the
    hour and at midnight."""
    if bucket_ns is not None and bucket_ns <= 0:
        raise UsageError("--bucket: 0s is no bucket: give a duration above 0, e.g. 1h")
    engine = read_engine(url)
    try:
        with engine.connect() as connection:
            return _collect(connection, url, since_ns, until_ns, top, bucket_ns, max_buckets, utc)
    except sa_exc.DBAPIError as exc:
        raise translate(exc) from None
    finally:
        engine.dispose()


def _collect(
    connection: Connection,
    url: str,
    since_ns: int | None,
    until_ns: int | None,
    top: int,
    bucket_ns: int | None,
    max_buckets: int,
    utc: bool,
) -> Stats:
    if connection.dialect.name == "sqlite":
        # One read transaction: every figure from the same snapshot, while
        # ingest commits (PostgreSQL's read engine is REPEATABLE READ).
        connection.exec_driver_sql("BEGIN")
    window = _Window(since_ns, until_ns)
    by_level = _counts(connection, window)
    levels = tuple(by_level.get((0, int(level)), 0) for level in Level)
    # A subquery each: SQLite finds a lone min() or max() at an end of the
    # time index, but reads the whole index for both in one SELECT.
    first_ns, last_ns = connection.execute(
        select(
            *(
                select(extreme(_records.c.time_ns)).where(*window.terms).scalar_subquery()
                for extreme in (func.min, func.max)
            )
        )
    ).one()
    processes = sorted(
        (
            ProcessCount(name, int(count), pids)  # PostgreSQL sums bigints as numeric
            for name, count, pids in connection.execute(_by_process(window))
        ),
        key=lambda item: (-item.records, item.process),
    )
    size = bucket_ns
    buckets: tuple[Bucket, ...] = ()
    if first_ns is not None:
        start = first_ns if since_ns is None else since_ns
        end = last_ns if until_ns is None else until_ns
        size = size or choose_bucket(end - start, max_buckets)
        origin = _aligned(start, size, utc)
        if (end - origin) // size >= MAX_CHART_BUCKETS:  # a bucket of 1ns over a week...
            raise UsageError(
                f"--bucket: {(end - origin) // size + 1:,} buckets in this window, more than "
                f"{MAX_CHART_BUCKETS:,}: give a larger bucket or a narrower window"
            )
        buckets = _buckets(connection, window, origin, end, size)
    sql = Sql(DIALECTS[connection.dialect.name])
    placed = select_losses(sql, since_ns, until_ns)
    losses = tuple(
        LossCount(reason, rows, int(lost))
        for reason, rows, lost in connection.exec_driver_sql(
            f"SELECT reason, count(*), sum(count) FROM ({placed}) AS placed"
            " GROUP BY reason ORDER BY reason",
            tuple(sql.params),
        )
    )
    return Stats(
        database=_database_size(connection, url),
        since_ns=since_ns,
        until_ns=until_ns,
        records=sum(levels),
        first_ns=first_ns,
        last_ns=last_ns,
        levels=levels,
        processes=tuple(processes[:top]),
        process_names=len(processes),
        bucket_ns=size or BUCKET_SIZES[0],
        buckets=buckets,
        losses=losses,
        instances=_instance_accounts(connection),
    )


class _Window:
    """[since_ns, until_ns] (None: open) as the counters see it: the whole
    minutes inside it, whose records record_counts counts, and at its ends
    the parts of minutes it cuts, whose records are counted one by one
    along the time index (at most a minute's records at each end)."""

    def __init__(self, since_ns: int | None, until_ns: int | None) -> None:
        self.terms: list[Any] = []
        if since_ns is not None:
            self.terms.append(_records.c.time_ns >= since_ns)
        if until_ns is not None:
            self.terms.append(_records.c.time_ns <= until_ns)
        self.first = None if since_ns is None else -(-since_ns // NS_PER_MINUTE)
        self.last = None if until_ns is None else (until_ns + 1) // NS_PER_MINUTE - 1
        # False when no whole minute lies in it: then its records (a minute
        # or two's) are all counted.
        self.whole_minutes = self.first is None or self.last is None or self.first <= self.last
        self.edges: list[tuple[int, int]] = []  # [from_ns, to_ns] of the minutes it cuts
        if self.first is not None and since_ns is not None:
            self.edges.append((since_ns, self.first * NS_PER_MINUTE - 1))
        if self.last is not None and until_ns is not None:
            self.edges.append(((self.last + 1) * NS_PER_MINUTE, until_ns))


def _by_process(window: _Window) -> Select:
    """Records and distinct pids per process name: of the whole store, a row
    of pid_counts per (pid, process, instance); of a window, its records."""
    if not window.terms:
        pids = schema.pid_counts
        return select(
            pids.c.process, func.sum(pids.c.count), func.count(pids.c.pid.distinct())
        ).group_by(pids.c.process)
    return (
        select(_records.c.process, func.count(), func.count(_records.c.pid.distinct()))
        .where(*window.terms)
        .group_by(_records.c.process)
    )


def _counts(
    connection: Connection,
    window: _Window,
    key: Callable[[Any], Any] | None = None,
    counters: bool = True,
) -> dict[tuple[int, int], int]:
    """Records in window by (key(time), level); key (None: all in one
    group, 0) must give every time of a minute the same group when counters
    is set: whole minutes come from record_counts, the rest from records."""
    parts = []
    if counters and window.whole_minutes:
        minute = _counters.c.minute
        group = [] if key is None else [key(minute * NS_PER_MINUTE)]
        terms = [] if window.first is None else [minute >= window.first]
        terms += [] if window.last is None else [minute <= window.last]
        parts.append(
            select(*group, _counters.c.level, func.sum(_counters.c.count))
            .where(*terms)
            .group_by(*group, _counters.c.level)
        )
        spans = [_records.c.time_ns.between(*edge) for edge in window.edges if edge[0] <= edge[1]]
    else:
        spans = [and_(true(), *window.terms)]
    for span in spans:
        group = [] if key is None else [key(_records.c.time_ns)]
        parts.append(
            select(*group, _records.c.level, func.count())
            .where(span)
            .group_by(*group, _records.c.level)
        )
    counts: dict[tuple[int, int], int] = {}
    for part in parts:
        for row in connection.execute(part):
            number, level, count = (0, *row) if key is None else row
            counts[int(number), int(level)] = counts.get((int(number), int(level)), 0) + int(count)
    return counts


def choose_bucket(span_ns: int, max_buckets: int = MAX_BUCKETS) -> int:
    """The smallest bucket size that covers span_ns in at most max_buckets
    buckets (whole days when none of BUCKET_SIZES does)."""
    for size in BUCKET_SIZES:
        if span_ns // size + 2 <= max_buckets:  # a span rarely starts on a bucket's start
            return size
    return -(-span_ns // (max_buckets - 1) // _DAY) * _DAY


def _aligned(time_ns: int, size: int, utc: bool) -> int:
    """The start of the bucket time_ns falls in: a multiple of size in local
    time (the zone's offset at time_ns), or in UTC."""
    offset_ns = 0
    if not utc:
        moment = datetime.fromtimestamp(time_ns // NS_PER_SECOND, timezone.utc).astimezone()
        offset_ns = int(moment.utcoffset().total_seconds()) * NS_PER_SECOND  # type: ignore[union-attr]
    return (time_ns + offset_ns) // size * size - offset_ns


def _buckets(
    connection: Connection, window: _Window, origin: int, end: int, size: int
) -> tuple[Bucket, ...]:
    def index(time_ns: Any) -> Any:
        return (time_ns - origin) // size  # never negative: origin <= every time

    # Buckets of whole minutes add up the counters; others count records.
    whole = size % NS_PER_MINUTE == 0 and origin % NS_PER_MINUTE == 0
    counts: dict[int, list[int]] = {}
    for (number, level), count in _counts(connection, window, index, counters=whole).items():
        counts.setdefault(number, [0] * len(Level))[level - 1] = count
    last = (end - origin) // size
    return tuple(
        Bucket(origin + number * size, tuple(counts.get(number, [0] * len(Level))))
        for number in range(last + 1)
    )


def _instance_accounts(connection: Connection) -> tuple[InstanceAccount, ...]:
    records, losses, i = _records.alias("r"), _losses.alias("l"), _instances
    # An instance's records are one range of the key (schema.record_id):
    # counting them is one pass over that range, not over the store.
    base = i.c.id.op("<<")(schema.SEQ_SHIFT)
    first = base + i.c.first_seq
    high_water = base + i.c.high_water  # + not |: a kernel log's starts at -1
    end = (i.c.id + 1).op("<<")(schema.SEQ_SHIFT)

    def scalar(statement: Any) -> Any:
        return statement.correlate(i).scalar_subquery()

    # Stored: what the counters hold of it, less the records outside
    # first_seq..high_water (none, normally: two searches of the key).
    # Counting its range of the key instead reads every page of its records
    # (5.7 s for 10M); a record gone behind kextlog's back shows in `kextlog
    # db check` (the counters against the records) and instance_accounting.
    held = (
        select(_counters.c.instance_id, func.sum(_counters.c.count).label("records"))
        .group_by(_counters.c.instance_id)
        .subquery()
    )
    ahead = scalar(select(func.count()).where(records.c.id > high_water, records.c.id < end))
    before = scalar(select(func.count()).where(records.c.id >= base, records.c.id < first))
    stored = func.coalesce(held.c.records, 0) - ahead - before
    lost = scalar(
        select(func.coalesce(func.sum(losses.c.count), 0)).where(losses.c.instance_id == i.c.id)
    )

    def record_time(order: Any) -> Any:
        return scalar(
            select(records.c.time_ns)
            .where(records.c.id >= first, records.c.id < end)
            .order_by(order)
            .limit(1)
        )

    rows = connection.execute(
        select(
            i.c.uuid,
            i.c.source,
            i.c.name,
            i.c.boot_id,
            i.c.producer_version,
            i.c.first_seen_ns,
            i.c.last_seen_ns,
            i.c.first_seq,
            i.c.high_water,
            stored,
            lost,
            i.c.filtered,
            i.c.pruned_records,
            i.c.pruned_lost,
            ahead,
            record_time(records.c.id),
            record_time(records.c.id.desc()),
        )
        .select_from(i.outerjoin(held, held.c.instance_id == i.c.id))
        .order_by(i.c.first_seen_ns, i.c.id)
    )
    # The columns are InstanceAccount's fields, in order; PostgreSQL sums
    # bigints as numeric (stored, lost).
    return tuple(InstanceAccount(*row[:9], int(row[9]), int(row[10]), *row[11:]) for row in rows)


def _database_size(connection: Connection, url: str) -> DatabaseSize | None:
    path = sqlite_path(url)
    if path is None:
        return _postgresql_size(connection) if connection.dialect.name == "postgresql" else None

    def pragma(name: str) -> int:
        return int(connection.exec_driver_sql(f"PRAGMA {name}").scalar_one())

    wal = path.with_name(path.name + "-wal")
    return DatabaseSize(
        path=str(path),
        file_bytes=os.path.getsize(path),
        wal_bytes=os.path.getsize(wal) if wal.exists() else 0,
        page_size=pragma("page_size"),
        page_count=pragma("page_count"),
        free_pages=pragma("freelist_count"),
    )


def _postgresql_size(connection: Connection) -> DatabaseSize:
    """The database on the server, in its blocks: what pg_database_size
    counts (its files, WAL aside); free space inside them is not known
    without extensions, so none is counted as free."""
    size, block = connection.execute(
        text("SELECT pg_database_size(current_database()), current_setting('block_size')::int")
    ).one()
    url = connection.engine.url.set(drivername="postgresql")
    return DatabaseSize(
        path=redact(url.render_as_string(hide_password=False)),
        file_bytes=int(size),
        wal_bytes=0,
        page_size=int(block),
        page_count=int(size) // int(block),
        free_pages=0,
    )

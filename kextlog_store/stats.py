"""`kextlog stats`: what the store holds, in figures.

Records per level and per process, the rate over time in buckets (by
level), the losses by reason, every instance with its accounting, the size
of the database and the range of dates.  One collect() call reads them all
with a handful of aggregate queries, each one pass over an index where
there is one (level and time: ix_records_level_time_ns; instance and seq:
the UNIQUE key); per process is a scan of the window.  Rendering is
render.figures.write_stats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, func, select, text
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
    window = []
    if since_ns is not None:
        window.append(_records.c.time_ns >= since_ns)
    if until_ns is not None:
        window.append(_records.c.time_ns <= until_ns)
    by_level: dict[int, int] = {
        int(level): int(count)
        for level, count in connection.execute(
            select(_records.c.level, func.count()).where(*window).group_by(_records.c.level)
        )
    }
    levels = tuple(by_level.get(int(level), 0) for level in Level)
    first_ns, last_ns = connection.execute(
        select(func.min(_records.c.time_ns), func.max(_records.c.time_ns)).where(*window)
    ).one()
    by_process = connection.execute(
        select(_records.c.process, func.count(), func.count(_records.c.pid.distinct()))
        .where(*window)
        .group_by(_records.c.process)
    ).all()
    processes = sorted(
        (ProcessCount(name, count, pids) for name, count, pids in by_process),
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
    connection: Connection, window: list[Any], origin: int, end: int, size: int
) -> tuple[Bucket, ...]:
    index = (_records.c.time_ns - origin) // size  # never negative: origin <= every time
    counts: dict[int, list[int]] = {}
    rows = connection.execute(
        select(index, _records.c.level, func.count())
        .where(*window)
        .group_by(index, _records.c.level)
    )
    for number, level, count in rows:
        counts.setdefault(int(number), [0] * len(Level))[int(level) - 1] = int(count)
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

    stored = scalar(select(func.count()).where(records.c.id >= first, records.c.id <= high_water))
    ahead = scalar(select(func.count()).where(records.c.id > high_water, records.c.id < end))
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
        ).order_by(i.c.first_seen_ns, i.c.id)
    )
    accounts = []
    for row in rows:
        (uuid, source, name, boot, version, first_seen, last_seen, first_seq, high_water, kept,
         gone, filtered, pruned_records, pruned_lost, beyond, first_record,
         last_record) = row  # fmt: skip
        accounts.append(
            InstanceAccount(
                instance=uuid,
                source=source,
                name=name,
                boot_id=boot,
                producer_version=version,
                first_seen_ns=first_seen,
                last_seen_ns=last_seen,
                first_seq=first_seq,
                high_water=high_water,
                stored=kept,
                lost=int(gone),
                filtered=filtered,
                pruned_records=pruned_records,
                pruned_lost=pruned_lost,
                ahead=beyond,
                first_record_ns=first_record,
                last_record_ns=last_record,
            )
        )
    return tuple(accounts)


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

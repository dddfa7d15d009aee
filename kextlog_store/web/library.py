"""kextlog's library as the web view uses it: the one module of
kextlog_store/web that imports the rest of kextlog_store.

Everything the pages need from the read path, the SQL sandbox, the stats,
the renderers and the store goes through here, so that a change of the
library's layout changes this module alone.  The few functions below are
thin: they put together the read path's parts (a filter's scope from
conditions.py, its SQL from query.py, read through store.engine's reader
as `kextlog query` reads) or add what a web page needs that the CLI does
not (a record by its key, an instance's seq window, a time limit on every
read of the process).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.pool import Pool

from kextlog_store import conditions, query, stats
from kextlog_store.cli_options import option
from kextlog_store.conditions import Sql
from kextlog_store.errors import DatabaseError, KextlogError, ReadOnlyError, UsageError
from kextlog_store.follow import follow
from kextlog_store.levels import Level, parse_level_range
from kextlog_store.query import (
    COLUMNS,
    LOSS_COLUMNS,
    PLACED,
    RECORDS,
    InstanceRows,
    batched,
    entries,
    fetch_losses,
    instances_of,
    select_losses,
    select_matching,
)
from kextlog_store.records import SEQ_BITS, Cursor, Entry, Loss, Record, one_by_one, record_id
from kextlog_store.render.entries import (
    LOSS_REASON_WORDS,
    RecordFormat,
    loss_short,
    record_fields,
    write_records,
)
from kextlog_store.render.figures import format_size, stats_fields
from kextlog_store.render.formats import SqlFormat
from kextlog_store.render.rows import write_rows
from kextlog_store.render.text import iso_time, zone
from kextlog_store.sql import SqlResult, run_sql
from kextlog_store.stats import Stats, choose_bucket
from kextlog_store.stats import collect as collect_stats
from kextlog_store.store import schema
from kextlog_store.store.engine import Reader, Reading, reader, sqlite_path
from kextlog_store.store.location import database_url
from kextlog_store.timespec import NS_PER_SECOND, parse_time, parse_until

__all__ = [
    "LOSS_REASON_WORDS",
    "NS_PER_SECOND",
    "SEQ_BITS",
    "Cursor",
    "DatabaseError",
    "Entry",
    "KextlogError",
    "Level",
    "Loss",
    "ReadOnlyError",
    "Reader",
    "Record",
    "RecordFilter",
    "RecordFormat",
    "SqlFormat",
    "SqlResult",
    "Stats",
    "UsageError",
    "aggregate",
    "bucket_start",
    "choose_bucket",
    "collect_stats",
    "entries",
    "follow",
    "format_size",
    "instance_window",
    "instances_of",
    "iso_time",
    "loss_short",
    "losses_of",
    "open_store",
    "option",
    "parse_level_range",
    "parse_time",
    "parse_until",
    "record_fields",
    "record_row",
    "run_sql",
    "stats_fields",
    "time_limit",
    "write_records",
    "write_rows",
    "zone",
]

RecordFilter = query.RecordFilter


def open_store(db: str | None) -> str:
    """The store's URL, once it is known to be one kextlog can read (as
    `kextlog query` opens it: never creating one).  Only SQLite: Datasette
    reads SQLite."""
    url = database_url(db)
    if sqlite_path(url) is None:
        raise UsageError(
            "kextlog web reads SQLite stores only (its table browser is Datasette's): "
            "use kextlog query and kextlog sql on a PostgreSQL store"
        )
    reader(url).dispose()
    return url


@contextmanager
def reading(url: str) -> Iterator[Reader]:
    """The read path's reader for one thread's reads, its statements
    stopped at time_limit()'s deadline; disposed of afterwards."""
    store = reader(url, deadline=_deadline.get())
    try:
        yield store
    finally:
        store.dispose()


def database_path(url: str) -> str:
    path = sqlite_path(url)
    assert path is not None  # open_store took SQLite only
    return str(path)


# --- a time limit on every read of the process ----------------------------

_deadline: ContextVar[float | None] = ContextVar("kextlog_web_deadline", default=None)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Reads in this context (this thread, or a task's copy of it) stop with
    DatabaseError('interrupted') after `seconds`, as `kextlog sql` stops a
    statement: SQLite's progress handler, installed on every connection the
    process checks out (install_time_limits)."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def timed_out() -> bool:
    deadline = _deadline.get()
    return deadline is not None and time.monotonic() > deadline


def _on_checkout(driver: Any, _record: Any, _proxy: Any) -> None:
    if isinstance(driver, sqlite3.Connection):
        driver.set_progress_handler(lambda: int(timed_out()), 10_000)


def install_time_limits() -> None:
    """Every SQLAlchemy pool of this process (the stats' engines; the read
    path's readers take the deadline in reading()) gets the progress
    handler of time_limit()."""
    if not event.contains(Pool, "checkout", _on_checkout):
        event.listen(Pool, "checkout", _on_checkout)


# --- what the read path has, reached here ------------------------------------


def aggregate(
    reading: Reading, record_filter: RecordFilter, columns: str, rest: str = ""
) -> Iterable[Sequence[Any]]:
    """SELECT columns FROM the records of a filter (its lines and order
    aside; the columns of query.COLUMNS, by name) rest: the read path's own
    selection, with what the filter names (instance, cursors, pids) looked
    up as `kextlog query` does.  columns and rest hold no parameter (the
    selection's are positional): integers are written in."""
    sql = Sql.on(reading)
    matching = select_matching(record_filter, sql, conditions.look_up(reading, record_filter))
    return reading.execute(f"SELECT {columns} FROM ({matching}) AS f {rest}", sql.params)


def losses_of(reading: Reading, record_filter: RecordFilter) -> list[Loss]:
    """The losses `kextlog query` shows among a filter's records (those of
    its window, instance, sources and hosts), in logged order."""
    scope = conditions.look_up(reading, record_filter)
    sql = Sql.on(reading)
    statement = select_losses(
        sql,
        record_filter.since_ns,
        record_filter.until_ns,
        record_filter=record_filter,
        scope=scope,
    )
    return fetch_losses(reading, statement, sql)


def _key(reading: Reading, instance: str, seq: int) -> int | None:
    """The record key of (instance id, seq), None for an instance not in the store."""
    sql = Sql.on(reading)
    rows = reading.execute(
        f"SELECT id FROM instances WHERE uuid = {sql.param(instance)}", sql.params
    )
    row_id = next((row[0] for row in rows), None)
    return None if row_id is None else record_id(int(row_id), seq)


def record_row(reading: Reading, instance: str, seq: int) -> dict[str, Any] | None:
    """Every stored column of one record (by its key: instance id and seq)
    and its instance's, or None."""
    key = _key(reading, instance, seq)
    if key is None:
        return None
    names = [column.name for column in schema.records.columns]
    own = ", ".join(f"r.{name}" for name in names)
    rows = reading.execute(
        f"SELECT {own}, i.uuid, i.source, i.host, i.name, i.boot_id FROM {RECORDS}"
        f" JOIN instances AS i ON r.instance_id = i.id WHERE r.id = {key}",
        [],
    )
    row = next(iter(rows), None)
    names += ["instance", "source", "host", "producer", "boot_id"]
    return None if row is None else dict(zip(names, row, strict=True))


def instance_window(
    reading: Reading, instance: str, first_seq: int, last_seq: int
) -> tuple[list[Record], list[Loss]]:
    """An instance's records with seqs first_seq..last_seq (one range of the
    record key), and the losses that overlap those seqs, in seq order."""
    base = _key(reading, instance, 0)
    if base is None:
        return [], []
    rows = reading.execute(
        f"SELECT {COLUMNS} FROM {RECORDS}"
        f" WHERE r.id >= {base + first_seq} AND r.id <= {base + last_seq} ORDER BY r.id",
        [],
    )
    found = list(one_by_one(batched(rows, InstanceRows(reading))))
    sql = Sql.on(reading)
    overlapping = (
        f"SELECT {LOSS_COLUMNS} FROM {PLACED} WHERE instance = {sql.param(instance)}"
        f" AND first_seq <= {sql.param(last_seq)} AND last_seq >= {sql.param(first_seq)}"
        " ORDER BY first_seq"
    )
    return found, fetch_losses(reading, overlapping, sql)


def bucket_start(time_ns: int, size_ns: int, utc: bool) -> int:
    """The start of the chart bucket of time_ns, as `kextlog stats` aligns
    them (multiples of the size in local time, or UTC)."""
    return stats._aligned(time_ns, size_ns, utc)

"""kextlog's library as the web view uses it: the one module of
kextlog_store/web that imports the rest of kextlog_store.

Everything the pages need from the read path, the SQL sandbox, the stats,
the renderers and the store goes through here, so that a change of the
library's layout changes this module alone.  The few functions below are
thin: they put together the read path's parts (a filter's scope from
conditions.py, its rows as records) or add what a web page needs that the
CLI does not (a record by its key, an instance's seq window, a time limit
on every read of the process).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine, Select, event, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import Pool

from kextlog_store import callbacks, conditions, query, stats
from kextlog_store.cli_options import option
from kextlog_store.errors import DatabaseError, KextlogError, ReadOnlyError, UsageError
from kextlog_store.follow import follow
from kextlog_store.levels import Level, parse_level_range
from kextlog_store.query import (
    as_record,
    entries_in,
    fetch_losses,
    select_losses,
    select_records,
)
from kextlog_store.records import Cursor, Entry, Loss, Record
from kextlog_store.render.entries import (
    LOSS_REASON_WORDS,
    RecordFormat,
    loss_short,
    record_fields,
    write_records,
)
from kextlog_store.render.figures import format_size, stats_fields
from kextlog_store.render.rows import SqlFormat, write_rows
from kextlog_store.render.text import iso_time, zone
from kextlog_store.sql import SqlResult, run_sql
from kextlog_store.stats import Stats, choose_bucket
from kextlog_store.stats import collect as collect_stats
from kextlog_store.store import schema
from kextlog_store.store.engine import read_engine, sqlite_path
from kextlog_store.store.errors import translate
from kextlog_store.store.location import database_url
from kextlog_store.timespec import NS_PER_SECOND, parse_time, parse_until

__all__ = [
    "LOSS_REASON_WORDS",
    "NS_PER_SECOND",
    "Cursor",
    "DatabaseError",
    "DriverError",
    "Entry",
    "KextlogError",
    "Level",
    "Loss",
    "ReadOnlyError",
    "Record",
    "RecordFilter",
    "RecordFormat",
    "SqlFormat",
    "SqlResult",
    "Stats",
    "UsageError",
    "bucket_start",
    "choose_bucket",
    "collect_stats",
    "database_error",
    "entries",
    "filtered",
    "follow",
    "format_size",
    "instance_hosts",
    "instance_window",
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
DriverError = sa_exc.DBAPIError  # a read that fails in the driver (SQLAlchemy wraps it)


def database_error(exc: DriverError) -> DatabaseError:
    """A driver's error as the read path words it (one line)."""
    return translate(exc)  # it unwraps SQLAlchemy's wrapper


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
    read_engine(url).dispose()
    return url


@contextmanager
def reading(url: str) -> Iterator[Engine]:
    """A read-only engine for one thread's reads, disposed of afterwards
    (the read engine's pool is not one connections may move across
    threads in)."""
    engine = read_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


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
    """Every pool of this process (the read path's engines, the stats')
    gets the progress handler of time_limit()."""
    if not event.contains(Pool, "checkout", _on_checkout):
        event.listen(Pool, "checkout", _on_checkout)


def _prepare(connection: Connection) -> callbacks.Callbacks | None:
    """The read path's callbacks (REGEXP for --grep), whose progress handler
    replaces the pool's: it gets time_limit()'s deadline."""
    hooks = callbacks.prepare(connection)
    if hooks is not None:
        hooks.deadline = _deadline.get()
    return hooks


# --- what the read path has, reached here ------------------------------------


def filtered(connection: Connection, record_filter: RecordFilter) -> Select[Any]:
    """The records of a filter (its lines and order aside) as a SELECT to
    aggregate over: the read path's own selection, with what the filter
    names (instance, cursors, pids) looked up as `kextlog query` does."""
    _prepare(connection)
    scope = conditions.look_up(connection, record_filter)
    plain = RecordFilter(**{**record_filter.__dict__, "lines": None, "reverse": False})
    return select_records(plain, scope).order_by(None)


def entries(engine: Engine, record_filter: RecordFilter) -> Generator[Entry, None, None]:
    """query.entries(), what `kextlog query` shows, under time_limit()."""
    hooks = None
    try:
        with engine.connect() as connection:
            hooks = _prepare(connection)
            scope = conditions.look_up(connection, record_filter)
            yield from entries_in(connection, record_filter, scope)
    except DriverError as exc:
        raise callbacks.read_error(exc, hooks) from None


def losses_of(connection: Connection, record_filter: RecordFilter) -> list[Loss]:
    """The losses `kextlog query` shows among a filter's records (those of
    its window, instance, sources and hosts), in logged order."""
    scope = conditions.look_up(connection, record_filter)
    statement = select_losses(
        record_filter.since_ns, record_filter.until_ns, record_filter=record_filter, scope=scope
    )
    return fetch_losses(connection, statement)


def instance_hosts(connection: Connection) -> dict[str, str]:
    """Each instance id's host."""
    instances = schema.instances
    return {
        uuid: host for uuid, host in connection.execute(select(instances.c.uuid, instances.c.host))
    }


def _key(connection: Connection, instance: str, seq: int) -> int | None:
    """The record key of (instance id, seq), None for an instance not in the store."""
    row_id = connection.execute(
        select(schema.instances.c.id).where(schema.instances.c.uuid == instance)
    ).scalar()
    return None if row_id is None else schema.record_id(int(row_id), seq)


def record_row(connection: Connection, instance: str, seq: int) -> dict[str, Any] | None:
    """Every stored column of one record (by its key: instance id and seq)
    and its instance's, or None."""
    records, instances = schema.records, schema.instances
    key = _key(connection, instance, seq)
    if key is None:
        return None
    row = connection.execute(
        select(
            records,
            instances.c.uuid.label("instance"),
            instances.c.source,
            instances.c.host,
            instances.c.name.label("producer"),
            instances.c.boot_id,
        )
        .select_from(records.join(instances, records.c.instance_id == instances.c.id))
        .where(records.c.id == key)
    ).one_or_none()
    return None if row is None else dict(row._mapping)


def instance_window(
    connection: Connection, instance: str, first_seq: int, last_seq: int
) -> tuple[list[Record], list[Loss]]:
    """An instance's records with seqs first_seq..last_seq (one range of the
    record key), and the losses that overlap those seqs, in seq order."""
    base = _key(connection, instance, 0)
    if base is None:
        return [], []
    rows = connection.execute(
        select_records(RecordFilter())
        .where(schema.records.c.id >= base + first_seq, schema.records.c.id <= base + last_seq)
        .order_by(None)
        .order_by(schema.records.c.id)
    )
    placed = select_losses().order_by(None)
    columns = placed.selected_columns
    overlapping = placed.where(
        columns.instance == instance, columns.first_seq <= last_seq, columns.last_seq >= first_seq
    ).order_by(columns.first_seq)
    return [as_record(row) for row in rows], fetch_losses(connection, overlapping)


def bucket_start(time_ns: int, size_ns: int, utc: bool) -> int:
    """The start of the chart bucket of time_ns, as `kextlog stats` aligns
    them (multiples of the size in local time, or UTC)."""
    return stats._aligned(time_ns, size_ns, utc)

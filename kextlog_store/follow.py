"""Following the log as it grows: `kextlog query --follow`."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from dataclasses import replace

from sqlalchemy import Connection, Engine, and_, func, or_, select
from sqlalchemy import exc as sa_exc

from . import callbacks
from .conditions import Scope, first_id, look_up, where
from .errors import UsageError
from .query import RecordFilter, as_record, columns, entries_in, fetch_losses, merge, select_losses
from .records import Entry
from .store import schema

_records = schema.records
_instances = schema.instances
_losses = schema.losses


FOLLOW_LINES = 10  # what --follow shows first without -n, as journalctl -f
POLL_SECONDS = 0.2  # how often --follow looks for new rows: one rowid search each


def follow(
    engine: Engine,
    record_filter: RecordFilter,
    *,
    poll_seconds: float = POLL_SECONDS,
    stop: threading.Event | None = None,
) -> Generator[Entry, None, None]:
    """entries(), then every matching record and loss as ingest commits it,
    until stop is set or the caller stops iterating (the CLI: Ctrl-C, that
    is KeyboardInterrupt).

    Without lines it starts with the last FOLLOW_LINES records, unless
    since_ns or a cursor says where to start (as journalctl -f).  The first
    output and the ids it ends at are read in one snapshot; then each poll
    reads every instance's highest record id (one search of the key each)
    and the highest loss id, and fetches only the rows above what it has
    seen: a poll costs the same at any size of store, and no read
    transaction stays open while it waits.  Records of one poll come in
    logged order; a record that arrives later with an earlier time (another
    instance's, or a replay) is shown when it arrives.
    """
    if record_filter.reverse:
        raise UsageError("--follow shows the newest records last: it cannot be --reverse")
    if record_filter.until_ns is not None:
        raise UsageError("--follow shows records as they arrive: it cannot have --until")
    lines = record_filter.lines
    starts = (record_filter.since_ns, record_filter.cursor, record_filter.after_cursor)
    if lines is None and all(value is None for value in starts):
        lines = FOLLOW_LINES
    hooks = None
    try:
        with engine.connect() as connection:
            hooks = callbacks.prepare(connection)
            scope = look_up(connection, record_filter)
            if connection.dialect.name == "sqlite":
                # One snapshot for the first output and its end (PostgreSQL:
                # the read engine's transactions are REPEATABLE READ).
                connection.exec_driver_sql("BEGIN")
            seen = _newest_ids(connection)
            yield from entries_in(connection, replace(record_filter, lines=lines), scope)
            connection.rollback()
            later = replace(record_filter, lines=None)
            stop = stop or threading.Event()
            while not stop.wait(poll_seconds):
                newest = _newest_ids(connection)
                if newest != seen:
                    windows = tuple(
                        (seen[0].get(instance, first_id(instance)), last)
                        for instance, last in newest[0].items()
                        if last > seen[0].get(instance, first_id(instance))
                    )
                    window = replace(scope, new_records=windows, new_losses=(seen[1], newest[1]))
                    yield from _new_entries(connection, later, window)
                    seen = newest
                connection.rollback()  # no read transaction while waiting
    except sa_exc.DBAPIError as exc:
        raise callbacks.read_error(exc, hooks) from None


def _newest_ids(connection: Connection) -> tuple[dict[int, int], int]:
    """Each instance's highest record id (its first id when it has none) and
    the highest loss id."""
    records = _records.alias("r")
    newest = (
        select(func.max(records.c.id))
        .where(
            records.c.id >= _instances.c.id.op("<<")(schema.SEQ_SHIFT),
            records.c.id < (_instances.c.id + 1).op("<<")(schema.SEQ_SHIFT),
        )
        .correlate(_instances)
        .scalar_subquery()
    )
    by_instance = {
        int(instance): int(last) if last is not None else first_id(instance)
        for instance, last in connection.execute(select(_instances.c.id, newest))
    }
    last_loss = connection.execute(select(func.coalesce(func.max(_losses.c.id), 0))).scalar_one()
    return by_instance, int(last_loss)


def _new_entries(
    connection: Connection, record_filter: RecordFilter, scope: Scope
) -> Iterator[Entry]:
    """The rows of one poll, in logged order.  The new records are taken
    apart first (a materialized CTE, found by their ids alone), so that no
    index of the filter's columns tempts SQLite into scanning the store."""
    lost = fetch_losses(
        connection,
        select_losses(record_filter.since_ns, None, record_filter=record_filter, scope=scope),
    )
    windows = scope.new_records or ()
    if not windows:
        yield from lost
        return
    wanted = ("id", "instance_id", "seq", "time_ns", "level", "flags", "pid", "tid", "process",
              "message", "syslog_priority", "facility", "fields")  # fmt: skip
    new = (
        select(*(_records.c[name] for name in wanted))
        .where(or_(*(and_(_records.c.id > low, _records.c.id <= high) for low, high in windows)))
        .cte("new")
        .prefix_with("MATERIALIZED")
    )
    statement = (
        select(*columns(new))
        .select_from(new.join(_instances, new.c.instance_id == _instances.c.id))
        .where(*where(record_filter, scope, new))
        .order_by(new.c.time_ns, new.c.id)
    )
    rows = connection.execute(statement)
    yield from merge((as_record(row) for row in rows), lost)

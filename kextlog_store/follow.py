"""Following the log as it grows: `kextlog query --follow`."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from dataclasses import replace

from .conditions import Scope, Sql, first_id, instance_bounds, look_up
from .errors import UsageError
from .query import (
    InstanceRows,
    RecordFilter,
    batched,
    fetch_losses,
    found_in,
    merge,
    select_losses,
    select_records,
)
from .records import Entry, Found, one_by_one
from .store.engine import Reader, Reading

FOLLOW_LINES = 10  # what --follow shows first without -n, as journalctl -f
POLL_SECONDS = 0.2  # how often --follow looks for new rows: one rowid search each


def follow(
    reader: Reader,
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
    with reader.connect() as reading:
        scope = look_up(reading, record_filter)
        reading.begin()  # one snapshot for the first output and its end
        seen = _newest_ids(reading)
        yield from one_by_one(found_in(reading, replace(record_filter, lines=lines), scope))
        reading.rollback()
        later = replace(record_filter, lines=None)
        stop = stop or threading.Event()
        while not stop.wait(poll_seconds):
            newest = _newest_ids(reading)
            if newest != seen:
                windows = tuple(
                    (seen[0].get(instance, first_id(instance)), last)
                    for instance, last in newest[0].items()
                    if last > seen[0].get(instance, first_id(instance))
                )
                window = replace(scope, new_records=windows, new_losses=(seen[1], newest[1]))
                yield from one_by_one(_new_entries(reading, later, window))
                seen = newest
            reading.rollback()  # no read transaction while waiting


_NEWEST_IDS = (
    "SELECT i.id, (SELECT max(r.id) FROM records AS r"
    f" WHERE {instance_bounds('r.id', 'i.id')}) FROM instances AS i"
)


def _newest_ids(reading: Reading) -> tuple[dict[int, int], int]:
    """Each instance's highest record id (its first id when it has none) and
    the highest loss id."""
    by_instance = {
        int(instance): int(last) if last is not None else first_id(instance)
        for instance, last in reading.execute(_NEWEST_IDS, [])
    }
    (last_loss,) = next(iter(reading.execute("SELECT coalesce(max(id), 0) FROM losses", [])))
    return by_instance, int(last_loss)


# The columns of the records a poll reads.
_NEW = (
    "id, instance_id, seq, time_ns, level, flags, pid, tid, process, message, syslog_priority,"
    " facility, fields"
)


def _new_entries(reading: Reading, record_filter: RecordFilter, scope: Scope) -> Iterator[Found]:
    """The rows of one poll, in logged order.  The new records are taken
    apart first (a materialized CTE, found by their ids alone), so that no
    index of the filter's columns tempts SQLite into scanning the store."""
    sql = Sql.on(reading)
    statement = select_losses(sql, record_filter.since_ns, record_filter=record_filter, scope=scope)
    lost = fetch_losses(reading, statement, sql)
    windows = scope.new_records or ()
    if not windows:
        yield from lost
        return
    ids = " OR ".join(f"(id > {low} AND id <= {high})" for low, high in windows)
    new = f"WITH new AS MATERIALIZED (SELECT {_NEW} FROM records WHERE {ids}) "
    sql = Sql.on(reading)
    rows = reading.execute(new + select_records(record_filter, sql, scope, "new AS r"), sql.params)
    yield from merge(batched(rows, InstanceRows(reading)), lost)

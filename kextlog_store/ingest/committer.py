"""Commits: a batch in one transaction, then each producer's ACK, the echo
of the records and the latency figures.

When a write fails in a way that can pass (a full disk, a read-only or
failing file system, a lock held too long), it is tried again with backoff
for as long as that lasts, acknowledging nothing meanwhile: the readers
stop once the queue is full, and the producers' rings hold the rest.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..errors import DatabaseError, KextlogError, one_line
from ..records import TIME_NS, Record
from ..redact import redact
from ..store.engine import sqlite_path
from ..store.errors import passing_failure
from ..store.writer import Writer
from .accounting import Batch

if TYPE_CHECKING:
    from .readers import Session

log = logging.getLogger("kextlog.ingest")

T = TypeVar("T")

BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
LATENCY_EVERY = 16  # one record in this many is sampled for the latency figures


@dataclass
class IngestTotals:
    stored: int = 0
    lost: int = 0
    filtered: int = 0
    commits: int = 0


@dataclass
class StoreOutage:
    """Writes to the store failing in a way that can pass (store.errors.passing_failure)."""

    what: str  # e.g. "disk full"
    error: str  # the store's own words
    since_ns: int
    began: float  # time.monotonic() then
    waiting: int  # records held, not acknowledged

    def describe(self) -> dict:
        """As `kextlog status` shows it (JSON-ready)."""
        return {
            "what": self.what,
            "error": self.error,
            "since_ns": self.since_ns,
            "waiting": self.waiting,
        }


class Latencies:
    """A histogram of latencies in buckets 2% wide: constant memory however
    long the daemon runs, percentiles to within 2%."""

    GROWTH = math.log(1.02)

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0

    def add(self, ns: int) -> None:
        bucket = int(math.log(ns) / self.GROWTH) if ns > 1 else 0
        self.buckets[bucket] = self.buckets.get(bucket, 0) + 1
        self.count += 1

    def percentile(self, fraction: float) -> float | None:
        """In milliseconds (the upper edge of the bucket holding it)."""
        if not self.count:
            return None
        rank, seen = fraction * self.count, 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return round(math.exp((bucket + 1) * self.GROWTH) / 1e6, 3)
        raise AssertionError("unreachable: the buckets hold every sample")

    def summary(self) -> dict:
        return {"p50": self.percentile(0.5), "p99": self.percentile(0.99), "samples": self.count}


class Committer:
    """Writes batches through writer (a reload may switch it).  stop ends an
    outage's retries: what was not stored stays with the producers.
    wait(seconds) is how it waits between tries (the daemon publishes its
    state meanwhile); echo, when given, gets each record once it is stored."""

    def __init__(
        self,
        writer: Writer,
        stop: threading.Event,
        totals: IngestTotals,
        wait: Callable[[float], None],
        echo: Callable[[Record], None] | None = None,
    ) -> None:
        self.writer = writer
        self.outage: StoreOutage | None = None
        self.latency_recent = Latencies()
        self.latency_run = Latencies()
        self._stop = stop
        self._totals = totals
        self._wait = wait
        self._echo = echo

    @property
    def where(self) -> str:
        """The store, as outages name it."""
        url = self.writer.engine.url.render_as_string(hide_password=False)
        return str(sqlite_path(url) or redact(url))

    def commit(self, batch: Batch, sessions: Mapping[int, Session]) -> None:
        """batch in one transaction; then the ACK of each of its instances
        to its connection in sessions (by instance id), and the echo."""
        states = list(batch.states.values())
        # Tried again as a whole after a failure: it rolled back, and what
        # the batch writes is the same every time (the rows, the losses, the
        # instances' high-water marks and counts as they stand).
        self.write(
            lambda: self.writer.commit(batch.rows, batch.losses, states, time.time_ns()),
            waiting=batch.count,
        )
        committed_ns = time.time_ns()
        self._totals.stored += batch.count
        self._totals.commits += 1
        # Kernel-to-commit latency: from the record's own timestamp.
        for rows in batch.rows.values():
            for row in rows[::LATENCY_EVERY]:
                self.latency_recent.add(committed_ns - row[TIME_NS])
                self.latency_run.add(committed_ns - row[TIME_NS])
        for state in states:
            sessions[state.id].ack(state.high_water)
        if self._echo is not None and batch.echo is not None:
            for instance_id, row in batch.echo:
                source = sessions[instance_id].source.spec
                self._echo(Record.of_row(row, batch.states[instance_id].uuid, source))

    def write(self, write: Callable[[], T], waiting: int) -> T:
        """write() to the store, tried again with backoff for as long as it
        fails in a way that can pass, acknowledging nothing meanwhile; the
        outage is reported once, and so is its end.  Any other failure is
        fatal, and so is a stop asked for during an outage: the producers
        still hold what was not stored, for the next start."""
        backoff = BACKOFF_FIRST
        while True:
            try:
                result = write()
            except KextlogError:
                raise  # said already: e.g. a damaged file (store.errors.damaged)
            except Exception as error:
                what = passing_failure(error)
                if what is None:
                    raise DatabaseError(
                        f"cannot write to the store {self.where}: {one_line(error)}"
                    ) from error
                self._failed(what, error, waiting)
                if self._stop.is_set():
                    raise DatabaseError(
                        f"stopped with {waiting:,} records not stored in {self.where} "
                        f"({what}); the producers still hold them"
                    ) from None
                self._wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                # New connections: one opened while the file system was
                # read-only stays read-only.
                self.writer.engine.dispose()
                continue
            if self.outage is not None:
                self._recovered()
            return result

    def _failed(self, what: str, error: Exception, waiting: int) -> None:
        cause = one_line(error)
        outage = self.outage
        if outage is None or outage.what != what:
            log.warning(
                "store %s: %s; %sacknowledging nothing, retrying",
                self.where,
                what if cause == what else f"{what} ({cause})",
                f"holding {waiting:,} records, " if waiting else "",
            )
        if outage is None:
            outage = StoreOutage(what, cause, time.time_ns(), time.monotonic(), waiting)
            self.outage = outage
        outage.what, outage.error, outage.waiting = what, cause, waiting

    def _recovered(self) -> None:
        outage = self.outage
        assert outage is not None
        self.outage = None
        log.info(
            "store %s: writable again after %.1f s of %s%s",
            self.where,
            time.monotonic() - outage.began,
            outage.what,
            f"; the {outage.waiting:,} records held are stored" if outage.waiting else "",
        )

"""`kextlog ingest`: reader threads -> bounded queue -> one batch writer.

Each source has a reader thread that connects (with backoff), answers HELLO
with RESUME from the instance's committed high-water mark, and drains the
socket into the queue as fast as the producer pushes.  The writer (the
calling thread) commits batches by count or by time, whichever comes first,
and only after COMMIT returns sends each producer its ACK: the highest seq
up to which every record is stored, recorded as lost, or filtered.

On request (SIGHUP) the writer commits and acknowledges what it holds, then
switches to what reopen() gives: options (not the sources: they need a
restart) and a writer, possibly on another database, in which each known
instance continues from its high-water mark.

When a commit fails in a way that can pass (a full disk, a read-only or
failing file system, a lock held too long), the writer keeps its batch and
tries it again with backoff, acknowledging nothing meanwhile: the readers
stop once the queue is full, and the producers' rings hold the rest.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from .errors import DatabaseError, KextlogError, SourceError
from .kmsg import SourceDone
from .levels import Level
from .redact import redact
from .retention import RetentionPolicy, apply, check
from .sources import Connection, Source, SourceClosed
from .store import SEQ_MASK, InstanceState, PidMerge, Writer, passing_failure, sqlite_path
from .wire import MALFORMED, SEQ_MAX, Hello, LogFrame, LogRun, Loss, Skipped, Status

if SEQ_MASK != SEQ_MAX:  # the store's key packing must be the header's field bounds
    raise ImportError("KEXTLOG_SEQ_BITS changed in kextlog_wire.h: update kextlog_store.store")

log = logging.getLogger("kextlog.ingest")

T = TypeVar("T")

HELLO_TIMEOUT = 5.0  # seconds a producer has to greet after connect
READ_TIMEOUT = 0.25  # how often readers look at the stop flag
GATHER_BYTES, GATHER_SECONDS = 64 * 1024, 0.005  # see _serve
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
PUBLISH_SECONDS = 1.0  # how often the daemon's state is published for `kextlog status`
DRAIN_READS = 64  # at a clean stop: reads of what producers sent since (16 MiB at most)
# Malformed input is reported once per burst: when none came for a while,
# and at least this often while it goes on.
SKIPPED_QUIET_SECONDS, SKIPPED_REPORT_SECONDS = 1.0, 5.0
LATENCY_EVERY = 16  # one record in this many is sampled for the latency figures
# pid_index is brought up to date by a sorted merge once this many records
# wait, or every so many seconds (queries scan what waits), moved in slices
# that hold the write lock briefly.
PID_MERGE_RECORDS = 200_000
PID_MERGE_SECONDS = 4.0
PID_MERGE_SLICE = 5_000


@dataclass
class IngestOptions:
    sources: list[Source]
    min_level: Level = Level.TRACE
    batch_records: int = 10_000
    batch_seconds: float = 0.05
    queue_batches: int = 32  # each is one read: the queue bounds the daemon's memory
    retention: RetentionPolicy | None = None  # applied now and then, beside the writer
    retention_seconds: float = 60.0


class SkipTally:
    """The malformed input of one source (wire.Skipped): totals for `kextlog
    status`, and a warning once per burst rather than once per frame."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # its reader adds what precedes HELLO, the writer the rest
        self.bytes = 0
        self.problems: Counter[str] = Counter()  # runs of skipped bytes, by problem
        self._burst: Counter[str] = Counter()  # the same, not reported yet
        self._burst_bytes = 0
        self._burst_start = self._burst_last = 0.0

    def add(self, skipped: Skipped) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._burst:
                self._burst_start = now
            self._burst_last = now
            self._burst[skipped.problem] += 1
            self._burst_bytes += skipped.size
            self.problems[skipped.problem] += 1
            self.bytes += skipped.size

    def report(self, now: float, ending: bool = False) -> str | None:
        """A line on the burst, once it is over or has gone on long enough."""
        with self._lock:
            if not self._burst or not (
                ending
                or now - self._burst_last >= SKIPPED_QUIET_SECONDS
                or now - self._burst_start >= SKIPPED_REPORT_SECONDS
            ):
                return None
            problems = ", ".join(f"{count:,} {problem}" for problem, count in self._burst.items())
            line = (
                f"skipped {self._burst_bytes:,} bytes of malformed input in the last "
                f"{max(now - self._burst_start, 1):.0f} s ({problems})"
            )
            self._burst.clear()
            self._burst_bytes = 0
            return line

    def totals(self) -> dict:
        with self._lock:
            return {"bytes": self.bytes, "problems": dict(self.problems)}


@dataclass
class SourceState:
    """What the daemon knows of one source; readers write it, status reads it."""

    spec: str
    connected: bool = False
    since_ns: int = 0  # when the current connection (or outage) began
    hello: Hello | None = None
    producer: Status | None = None  # the producer's latest STATUS
    received_seq: int = 0  # highest seq read from the current instance
    error: str | None = None
    finished: bool = False  # a --once source that handed over everything
    skipped: SkipTally = field(default_factory=SkipTally)


@dataclass
class Session:
    """One connection to a producer, for the instance its HELLO announced."""

    source: SourceState
    connection: Connection
    hello: Hello
    state: InstanceState | None = None  # set by the writer when it registers the instance
    # Bytes were skipped since the last seq: a gap there is their records.
    skipping: bool = False

    @property
    def gap_reason(self) -> str:
        return MALFORMED if self.skipping else "gap"

    def ack(self, seq: int) -> None:
        # A gone producer learns the same from the next connection's RESUME.
        with contextlib.suppress(OSError):
            self.connection.ack(seq)


@dataclass
class IngestTotals:
    stored: int = 0
    lost: int = 0
    filtered: int = 0
    commits: int = 0


@dataclass
class StoreOutage:
    """Writes to the store failing in a way that can pass (store.passing_failure)."""

    what: str  # e.g. "disk full"
    error: str  # the store's own words
    since_ns: int
    began: float  # time.monotonic() then
    waiting: int  # records held, not acknowledged


@dataclass
class _Batch:
    rows: dict[int, list[tuple]] = field(default_factory=dict)  # by instance id
    count: int = 0  # records in rows
    losses: list[dict] = field(default_factory=list)
    sessions: dict[int, Session] = field(default_factory=dict)  # by instance id
    echo: list[tuple[Session, tuple]] = field(default_factory=list)
    started: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.sessions)

    def add(self, state: InstanceState, rows: list[tuple]) -> None:
        self.rows.setdefault(state.id, []).extend(rows)
        self.count += len(rows)


class Ingest:
    def __init__(
        self,
        writer: Writer,
        options: IngestOptions,
        stop: threading.Event,
        echo: Callable[[Session, LogFrame], None] | None = None,
        publish: Callable[[dict], None] | None = None,
        reload: threading.Event | None = None,
        reopen: Callable[[], tuple[Writer, IngestOptions]] | None = None,
    ) -> None:
        if options.retention is not None:
            check(writer.engine, options.retention)  # refused at start, not every minute
        self.writer = writer
        self.options = options
        self.stop = stop
        self.echo = echo
        self.publish = publish
        self.reload = reload or threading.Event()  # set: commit, then switch to reopen()'s
        self.reopen = reopen
        self.totals = IngestTotals()
        self.sources = [SourceState(source.spec) for source in options.sources]
        self._queue: queue.Queue[tuple[Session, bytes | list]] = queue.Queue(options.queue_batches)
        self._states: dict[str, InstanceState] = {}
        self._greetings: dict[str, tuple[str, Hello]] = {}  # by instance: source, HELLO
        self._owners: dict[str, str] = {}  # by instance: the source it belongs to (_claim)
        self._owners_lock = threading.Lock()  # readers claim instances at the same time
        self._stopped_connections: list[Connection] = []  # by readers that stopped
        self._merge_due = threading.Event()  # enough records wait for pid_index
        self._unindexed = 0  # records committed since the merge was last asked for
        self._latency_recent = Latencies()
        self._latency_run = Latencies()
        self._started_ns = time.time_ns()
        self._outage: StoreOutage | None = None
        self._publish_error: str | None = None

    @property
    def _where(self) -> str:
        """The store, as outages name it (a reload may change it)."""
        url = self.writer.engine.url.render_as_string(hide_password=False)
        return str(sqlite_path(url) or redact(url))

    # -- readers ---------------------------------------------------------

    def _read_source(self, source: Source, state: SourceState) -> None:
        backoff = BACKOFF_FIRST
        state.since_ns = time.time_ns()
        once = getattr(source, "once", False)
        while not self.stop.is_set():
            try:
                connection = source.connect()
            except SourceError as error:
                if once:  # nothing to wait for: say why, and finish
                    state.error = str(error)
                    self._finished(state)
                    return
                if state.error != str(error):  # an outage is reported once
                    log.warning("%s; retrying", error)
                    state.error = str(error)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            try:
                self._serve(state, connection)
            except SourceDone:
                self._finished(state)
                return
            except (SourceError, OSError) as error:
                log.warning("%s: %s; reconnecting", source.spec, error)
                state.error = str(error)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            else:
                backoff = BACKOFF_FIRST
            finally:
                if self.stop.is_set():
                    # Open until the last commit's ACK has gone (run()).
                    self._stopped_connections.append(connection)
                else:
                    connection.close()
                state.connected = False
                state.since_ns = time.time_ns()

    def _retain(self) -> None:
        """The retention policy, applied now and then on a connection of its
        own: it deletes in small transactions and pauses between them, so
        the writer keeps committing (retention.apply)."""
        failed: str | None = None  # reported once, until it works again
        while not self.stop.wait(self.options.retention_seconds):
            policy = self.options.retention  # a reload may change it
            if policy is None:
                continue
            try:
                result = apply(self.writer.engine, policy, stop=self.stop)
            except KextlogError as error:
                if str(error) != failed:
                    log.warning("retention: %s; trying again later", error)
                    failed = str(error)
                continue
            failed = None
            if result.removed or result.losses:
                log.info(
                    "retention: removed %d records and %d loss rows; %d bytes in use",
                    result.removed,
                    result.losses,
                    result.size_after,
                )

    def _finished(self, state: SourceState) -> None:
        """A --once source has handed over all it had (or could not be read:
        state.error says why); the last one stops ingest."""
        if state.error is None:
            log.info("%s: all read", state.spec)
        state.finished = True
        if all(source.finished for source in self.sources):
            self.stop.set()

    @property
    def failures(self) -> list[str]:
        """Why --once sources could not be read."""
        return [source.error for source in self.sources if source.finished and source.error]

    def _serve(self, state: SourceState, connection: Connection) -> None:
        frames = self._greeting(connection, state)
        hello = frames.pop(0)
        assert isinstance(hello, Hello)
        session = Session(state, connection, hello)
        # After what is stored, and what the writer has taken from an earlier
        # connection but not stored yet (a replay of it would be skipped).
        known = self._states.get(hello.instance)
        try:
            stored = self.writer.known(hello.instance)
        except Exception as error:
            what = passing_failure(error)
            if what is None:
                raise
            # An outage of the store (the writer reports it): connect again later.
            raise SourceError(f"cannot read the store ({what})") from error
        self._claim(hello.instance, state.spec, stored.source if stored else None)
        resume = 1 + max(
            hello.first_seq - 1 if stored is None else stored.high_water,
            known.high_water if known else -1,
        )
        connection.resume(hello.instance_raw, resume)
        log.info(
            "%s: connected to %s %s, instance %s, resuming at seq %d",
            state.spec,
            hello.name,
            hello.producer_version,
            hello.instance,
            resume,
        )
        state.hello, state.producer, state.received_seq = hello, None, resume - 1
        state.connected, state.since_ns, state.error = True, time.time_ns(), None
        self._put(session, [hello, *frames], decoded=True)
        # Raw reads from here on: the writer decodes them, so this thread
        # holds the GIL for as little as possible while the writer inserts.
        try:
            while not self.stop.is_set():
                received = connection.receive(READ_TIMEOUT)
                if received:
                    self._put(session, received)
                    # A trickle (a kext sends a datagram per message) is gathered
                    # for a moment: fewer, larger hand-overs cost the writer less
                    # than the wait costs in latency.
                    if sum(map(len, received)) < GATHER_BYTES:
                        time.sleep(GATHER_SECONDS)
        except SourceClosed:
            self._put(session, None)  # a frame it left incomplete is truncated
            raise

    def _claim(self, instance: str, spec: str, stored_source: str | None) -> None:
        """An instance id is the source's that announced it first (in the
        store, or since ingest started): another source that announces it is
        refused, or its records would be taken for the first one's, and the
        first one's skipped as replays while they are acknowledged."""
        with self._owners_lock:
            owner = self._owners.setdefault(instance, stored_source or spec)
        if owner != spec:
            raise SourceError(f"instance {instance} belongs to {owner}: refused")

    def _greeting(self, connection: Connection, state: SourceState) -> list:
        deadline = time.monotonic() + HELLO_TIMEOUT
        while not self.stop.is_set():
            frames = connection.read(min(READ_TIMEOUT, max(deadline - time.monotonic(), 0)))
            while frames and isinstance(frames[0], Skipped):  # garbage before HELLO
                state.skipped.add(frames.pop(0))
            if frames:
                if not isinstance(frames[0], Hello):
                    raise SourceError("the producer did not start with HELLO")
                return frames
            if time.monotonic() >= deadline:
                raise SourceError("no HELLO from the producer")
        raise SourceError("stopping")

    def _put(self, session: Session, payload: object, decoded: bool = False) -> None:
        """Queues what was read (raw, or frames already) for the writer;
        waits while it is behind: the producer's ring holds the rest."""
        while not self.stop.is_set():
            try:
                self._queue.put((session, payload, decoded), timeout=READ_TIMEOUT)
                return
            except queue.Full:
                continue

    # -- writer ----------------------------------------------------------

    def run(self) -> IngestTotals:
        readers = [
            threading.Thread(target=self._read_source, args=(source, state), name=source.spec)
            for source, state in zip(self.options.sources, self.sources, strict=True)
        ]
        if self.options.retention is not None or self.reopen is not None:  # a reload may add one
            readers.append(threading.Thread(target=self._retain, name="retention"))
        self._start_merging()
        for reader in readers:
            reader.start()
        batch = _Batch()
        published = 0.0
        try:
            while not self.stop.is_set():
                timeout = self.options.batch_seconds
                if batch:
                    timeout = max(batch.started + self.options.batch_seconds - time.monotonic(), 0)
                try:
                    item = self._queue.get(timeout=min(timeout, PUBLISH_SECONDS))
                    if not batch:
                        batch.started = time.monotonic()
                    self._account(batch, *item)
                except queue.Empty:
                    pass
                now = time.monotonic()
                if batch.count >= self.options.batch_records or (
                    batch and now >= batch.started + self.options.batch_seconds
                ):
                    batch = self._commit(batch)
                if self.reload.is_set():
                    self.reload.clear()
                    batch = self._commit(batch)
                    self._reopen()
                if now - published >= PUBLISH_SECONDS:
                    self._publish(running=True)
                    self._report_skipped(now)
                    published = now
            # Clean stop: the readers are done reading; store what they queued.
            for reader in readers:
                reader.join()
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._account(batch, *item)
            self._commit(batch)
        finally:
            self.stop.set()
            for connection in self._stopped_connections:
                # What came since the readers stopped is read and dropped
                # first: a socket closed with unread data is reset, and the
                # producer's read fails before it reaches our last ACK.
                with contextlib.suppress(KextlogError, OSError):
                    for _ in range(DRAIN_READS):
                        if not connection.receive(0):
                            break
                connection.close()
            self._stop_merging()
            self._report_skipped(time.monotonic(), ending=True)
            self._publish(running=False)
        return self.totals

    def _report_skipped(self, now: float, ending: bool = False) -> None:
        for source in self.sources:
            line = source.skipped.report(now, ending)
            if line is not None:
                log.warning("%s: %s", source.spec, line)

    def _state(self, session: Session) -> InstanceState:
        if session.state is None:
            hello = session.hello
            registered = self._write(
                lambda: self.writer.register(
                    hello.instance,
                    first_seq=hello.first_seq,
                    source=session.source.spec,
                    name=hello.name,
                    boot_id=hello.boot_id,
                    producer_version=hello.producer_version,
                    now_ns=time.time_ns(),
                ),
                waiting=0,
            )
            # One state object per instance across reconnects: the writer's
            # view of what is accounted for must not go back.
            session.state = self._states.setdefault(hello.instance, registered)
            self._greetings[hello.instance] = (session.source.spec, hello)
        return session.state

    def _account(self, batch: _Batch, session: Session, payload: object, decoded: bool) -> None:
        """Every seq after the high-water mark is stored, lost or filtered,
        exactly once; a seq the producer skipped without a LOSS is a gap, and
        one whose frame the reader skipped is malformed."""
        frames = payload if decoded else session.connection.decode(payload)
        state = self._state(session)
        batch.sessions[state.id] = session
        for frame in frames:
            if isinstance(frame, LogRun):
                session.source.received_seq = frame.last_seq
                self._account_run(batch, session, state, frame)
                session.skipping = False
            elif isinstance(frame, Loss):
                session.source.received_seq = frame.last_seq
                first = max(frame.first_seq, state.high_water + 1)
                reason, session.skipping = session.gap_reason, False
                if first > frame.last_seq:
                    continue
                if first > state.high_water + 1:
                    self._lose(batch, state, state.high_water + 1, first - 1, None, None, reason)
                self._lose(
                    batch,
                    state,
                    first,
                    frame.last_seq,
                    frame.first_time_ns,
                    frame.last_time_ns,
                    frame.reason,
                )
            elif isinstance(frame, Status):
                session.source.producer = frame
            elif isinstance(frame, Skipped):
                session.source.skipped.add(frame)
                session.skipping = True

    def _account_run(
        self, batch: _Batch, session: Session, state: InstanceState, run: LogRun
    ) -> None:
        rows = run.rows
        if not (run.contiguous and run.first_seq == state.high_water + 1):
            # A replay overlapping what is stored, or seqs out of order: one
            # record at a time.  Live streams never come here.
            rows = []
            for row in run.rows:
                if row[0] <= state.high_water:
                    continue
                if row[0] > state.high_water + 1:
                    first, last = state.high_water + 1, row[0] - 1
                    self._lose(batch, state, first, last, None, None, session.gap_reason)
                session.skipping = False  # nothing was skipped between the rows of a run
                rows.append(row)
                state.high_water = row[0]
        if not rows:
            return
        state.high_water = rows[-1][0]
        min_level = self.options.min_level
        if min_level > Level.TRACE:
            kept = [row for row in rows if row[3] >= min_level]
            state.filtered += len(rows) - len(kept)
            self.totals.filtered += len(rows) - len(kept)
            rows = kept
        batch.add(state, rows)
        if self.echo is not None:
            batch.echo.extend((session, row) for row in rows)

    def _lose(
        self,
        batch: _Batch,
        state: InstanceState,
        first: int,
        last: int,
        first_time_ns: int | None,
        last_time_ns: int | None,
        reason: str,
    ) -> None:
        count = last - first + 1
        batch.losses.append(
            {
                "instance_id": state.id,
                "first_seq": first,
                "last_seq": last,
                "count": count,
                "first_time_ns": first_time_ns,
                "last_time_ns": last_time_ns,
                "reason": reason,
                "recorded_ns": time.time_ns(),
            }
        )
        self.totals.lost += count
        state.high_water = last
        state.lost += count
        if reason == MALFORMED:
            return  # reported with its burst of malformed input (SkipTally), not one by one
        log.warning(
            "instance %s: %d records lost (seqs %d..%d, %s)",
            state.uuid,
            count,
            first,
            last,
            reason,
        )

    def _commit(self, batch: _Batch) -> _Batch:
        if not batch:
            return batch
        states = [session.state for session in batch.sessions.values() if session.state]
        # Tried again as a whole after a failure: it rolled back, and what
        # the batch writes is the same every time (the rows, the losses, the
        # instances' high-water marks and counts as they stand).
        self._write(
            lambda: self.writer.commit(batch.rows, batch.losses, states, time.time_ns()),
            waiting=batch.count,
        )
        committed_ns = time.time_ns()
        self.totals.stored += batch.count
        self.totals.commits += 1
        # Kernel-to-commit latency: from the record's own timestamp.
        for rows in batch.rows.values():
            for row in rows[::LATENCY_EVERY]:
                self._latency_recent.add(committed_ns - row[1])
                self._latency_run.add(committed_ns - row[1])
        for session in batch.sessions.values():
            if session.state is not None:
                session.ack(session.state.high_water)
        if self.echo is not None:
            for session, row in batch.echo:
                self.echo(session, LogFrame(*row))
        self._unindexed += batch.count
        if self._unindexed >= PID_MERGE_RECORDS:
            self._unindexed = 0
            self._merge_due.set()
        return _Batch()

    def _start_merging(self) -> None:
        self._merge = PidMerge(self.writer.engine, PID_MERGE_SLICE, self.writer.host)
        self._merge_done = threading.Event()  # the writer is done with this store
        self._merger = threading.Thread(
            target=self._merge_pids, args=(self._merge, self._merge_done), name="pid index"
        )
        self._merger.start()

    def _stop_merging(self) -> None:
        self._merge_done.set()
        self._merge_due.set()  # wake it for the last merge
        self._merger.join()

    def _merge_pids(self, merge: PidMerge, done: threading.Event) -> None:
        """pid_index merges, beside the writer (store.PidMerge): when enough
        records wait, or every PID_MERGE_SECONDS; a last one once the writer
        is done with this store, without pauses.  A failure waits for the
        next (a busy store, a full disk), reported once until a merge works
        again."""
        failed: str | None = None
        while True:
            last = done.is_set()
            if not last:
                self._merge_due.wait(PID_MERGE_SECONDS)
                self._merge_due.clear()
            try:
                merge.merge(pause=done.wait)  # no pauses once done is set
                failed = None
            except Exception as error:
                if _cause(error) != failed:
                    failed = _cause(error)
                    log.warning("pid index: %s; trying again later", failed)
            if last:
                return

    # -- reload (SIGHUP) ---------------------------------------------------

    def _reopen(self) -> None:
        """Switches to reopen()'s writer and options once the batch is
        committed and acknowledged; on any failure goes on as it was.  Each
        known instance continues in the new store from its high-water mark:
        registered there from the next seq on, or, where that store knew it
        already, with its mark moved up (the seqs in between are in the
        other store)."""
        if self.reopen is None:
            return
        try:
            writer, options = self.reopen()
            fresh = {uuid: self._carry(writer, uuid, state) for uuid, state in self._states.items()}
        except Exception as error:  # a bad file, a store that cannot be opened: keep ours
            log.error("reload failed: %s; going on as before", error)
            return
        self._stop_merging()  # its last merge, on the old store
        self._publish(running=False)  # the old store's status says ingest left it
        for uuid, state in self._states.items():
            new = fresh[uuid]
            state.id, state.filtered, state.lost = new.id, new.filtered, new.lost
            state.high_water = max(state.high_water, new.high_water)
            state.pid_indexed_seq = new.pid_indexed_seq
        self.writer.engine.dispose()
        self.writer = writer
        self.options = replace(options, sources=self.options.sources)
        self._start_merging()
        self._publish(running=True)

    def _carry(self, writer: Writer, uuid: str, state: InstanceState) -> InstanceState:
        spec, hello = self._greetings[uuid]
        return writer.register(
            uuid,
            first_seq=state.high_water + 1,
            source=spec,
            name=hello.name,
            boot_id=hello.boot_id,
            producer_version=hello.producer_version,
            now_ns=time.time_ns(),
        )

    def _write(self, write: Callable[[], T], waiting: int) -> T:
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
                raise  # said already: e.g. a damaged file (store.damaged)
            except Exception as error:
                what = passing_failure(error)
                if what is None:
                    raise DatabaseError(
                        f"cannot write to the store {self._where}: {_cause(error)}"
                    ) from error
                self._failed(what, error, waiting)
                if self.stop.is_set():
                    raise DatabaseError(
                        f"stopped with {waiting:,} records not stored in {self._where} "
                        f"({what}); the producers still hold them"
                    ) from None
                self._wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                # New connections: one opened while the file system was
                # read-only stays read-only.
                self.writer.engine.dispose()
                continue
            if self._outage is not None:
                self._recovered()
            return result

    def _failed(self, what: str, error: Exception, waiting: int) -> None:
        cause = _cause(error)
        outage = self._outage
        if outage is None or outage.what != what:
            log.warning(
                "store %s: %s; %sacknowledging nothing, retrying",
                self._where,
                what if cause == what else f"{what} ({cause})",
                f"holding {waiting:,} records, " if waiting else "",
            )
        if outage is None:
            outage = StoreOutage(what, cause, time.time_ns(), time.monotonic(), waiting)
            self._outage = outage
        outage.what, outage.error, outage.waiting = what, cause, waiting

    def _recovered(self) -> None:
        outage = self._outage
        assert outage is not None
        self._outage = None
        log.info(
            "store %s: writable again after %.1f s of %s%s",
            self._where,
            time.monotonic() - outage.began,
            outage.what,
            f"; the {outage.waiting:,} records held are stored" if outage.waiting else "",
        )

    def _wait(self, seconds: float) -> None:
        """Waits seconds, or until stop; the state is published meanwhile
        (`kextlog status` shows the outage)."""
        end = time.monotonic() + seconds
        while not self.stop.is_set() and (left := end - time.monotonic()) > 0:
            self.stop.wait(min(left, PUBLISH_SECONDS))
            self._publish(running=True)

    # -- status ------------------------------------------------------------

    def snapshot(self, running: bool) -> dict:
        """The daemon's state as `kextlog status` shows it (JSON-ready)."""
        recent, self._latency_recent = self._latency_recent, Latencies()
        return {
            "pid": os.getpid(),
            "running": running,
            "started_ns": self._started_ns,
            "updated_ns": time.time_ns(),
            "stored": self.totals.stored,
            "lost": self.totals.lost,
            "filtered": self.totals.filtered,
            "commits": self.totals.commits,
            "store_outage": None
            if self._outage is None
            else {
                "what": self._outage.what,
                "error": self._outage.error,
                "since_ns": self._outage.since_ns,
                "waiting": self._outage.waiting,
            },
            "latency_ms": {"recent": recent.summary(), "run": self._latency_run.summary()},
            "sources": [self._describe(source) for source in self.sources],
        }

    def _describe(self, source: SourceState) -> dict:
        hello, producer = source.hello, source.producer
        state = self._states.get(hello.instance) if hello else None
        committed = state.high_water if state else None
        newest = max(source.received_seq, producer.next_seq - 1 if producer else 0)
        return {
            "source": source.spec,
            "connected": source.connected,
            "since_ns": source.since_ns,
            "error": source.error,
            "producer": f"{hello.name} {hello.producer_version}" if hello else None,
            "instance": hello.instance if hello else None,
            "committed_seq": committed,
            "lag": newest - committed if committed is not None else None,
            "lost": state.lost if state else None,
            "skipped": source.skipped.totals(),
            "ring": None
            if producer is None
            else {
                "records": producer.ring_records,
                "capacity": producer.ring_capacity,
                "bytes_used": producer.ring_bytes_used,
                "bytes": producer.ring_bytes,
                "producer_lost": producer.lost,
            },
        }

    def _publish(self, running: bool) -> None:
        if self.publish is None:
            return
        try:
            self.publish(self.snapshot(running))
        except OSError as error:  # the state is not worth stopping for
            if str(error) != self._publish_error:
                log.warning("cannot publish the state for `kextlog status`: %s", error)
            self._publish_error = str(error)
        else:
            self._publish_error = None


def _cause(error: Exception) -> str:
    """The store's own words (SQLAlchemy wraps the driver's error), one line."""
    return " ".join(str(getattr(error, "orig", None) or error).split())


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

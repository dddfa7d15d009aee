"""`kextlog ingest`: reader threads -> bounded queue -> one batch writer.

Each source has a reader thread that connects (with backoff), answers HELLO
with RESUME from the instance's committed high-water mark, and drains the
socket into the queue as fast as the producer pushes.  The writer (the
calling thread) commits batches by count or by time, whichever comes first,
and only after COMMIT returns sends each producer its ACK: the highest seq
up to which every record is stored, recorded as lost, or filtered.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import KextlogError, SourceError
from .levels import Level
from .sources import Connection, Source
from .store import InstanceState, Writer
from .wire import Hello, LogFrame, Loss, Status, encode_ack, encode_resume

log = logging.getLogger("kextlog.ingest")

HELLO_TIMEOUT = 5.0  # seconds a producer has to greet after connect
READ_TIMEOUT = 0.25  # how often readers look at the stop flag
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
PUBLISH_SECONDS = 1.0  # how often the daemon's state is published for `kextlog status`
LATENCY_EVERY = 16  # one record in this many is sampled for the latency figures


@dataclass
class IngestOptions:
    sources: list[Source]
    min_level: Level = Level.TRACE
    batch_records: int = 10_000
    batch_seconds: float = 0.1
    queue_batches: int = 32  # each is one read: the queue bounds the daemon's memory


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


@dataclass
class Session:
    """One connection to a producer, for the instance its HELLO announced."""

    source: SourceState
    connection: Connection
    hello: Hello
    state: InstanceState | None = None  # set by the writer when it registers the instance

    def ack(self, seq: int) -> None:
        # A gone producer learns the same from the next connection's RESUME.
        with contextlib.suppress(OSError):
            self.connection.send(encode_ack(seq))


@dataclass
class IngestTotals:
    stored: int = 0
    lost: int = 0
    filtered: int = 0
    commits: int = 0


@dataclass
class _Batch:
    rows: list[tuple] = field(default_factory=list)
    losses: list[dict] = field(default_factory=list)
    sessions: dict[int, Session] = field(default_factory=dict)  # by instance row id
    echo: list[tuple[Session, LogFrame]] = field(default_factory=list)
    started: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.sessions)


class Ingest:
    def __init__(
        self,
        writer: Writer,
        options: IngestOptions,
        stop: threading.Event,
        echo: Callable[[Session, LogFrame], None] | None = None,
        publish: Callable[[dict], None] | None = None,
    ) -> None:
        self.writer = writer
        self.options = options
        self.stop = stop
        self.echo = echo
        self.publish = publish
        self.totals = IngestTotals()
        self.sources = [SourceState(source.spec) for source in options.sources]
        self._queue: queue.Queue[tuple[Session, list]] = queue.Queue(options.queue_batches)
        # The highest seq each instance has had queued in this process, so a
        # reconnect resumes after what is queued but not yet committed.
        self._queued: dict[str, int] = {}
        self._queued_lock = threading.Lock()
        self._states: dict[str, InstanceState] = {}
        self._latency_recent = Latencies()
        self._latency_run = Latencies()
        self._started_ns = time.time_ns()

    # -- readers ---------------------------------------------------------

    def _read_source(self, source: Source, state: SourceState) -> None:
        backoff = BACKOFF_FIRST
        state.since_ns = time.time_ns()
        while not self.stop.is_set():
            try:
                connection = source.connect()
            except SourceError as error:
                if state.error != str(error):  # an outage is reported once
                    log.warning("%s; retrying", error)
                    state.error = str(error)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            try:
                self._serve(state, connection)
            except (SourceError, OSError) as error:
                log.warning("%s: %s; reconnecting", source.spec, error)
                state.error = str(error)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            else:
                backoff = BACKOFF_FIRST
            finally:
                connection.close()
                state.connected = False
                state.since_ns = time.time_ns()

    def _serve(self, state: SourceState, connection: Connection) -> None:
        frames = self._greeting(connection)
        hello = frames.pop(0)
        assert isinstance(hello, Hello)
        session = Session(state, connection, hello)
        with self._queued_lock:
            queued = self._queued.get(hello.instance, 0)
        resume = max(self.writer.high_water(hello.instance), queued) + 1
        connection.send(encode_resume(hello.instance_raw, resume))
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
        self._put(session, [hello, *frames])
        while not self.stop.is_set():
            frames = connection.read(READ_TIMEOUT)
            if frames:
                self._put(session, frames)

    def _greeting(self, connection: Connection) -> list:
        deadline = time.monotonic() + HELLO_TIMEOUT
        while not self.stop.is_set():
            frames = connection.read(min(READ_TIMEOUT, max(deadline - time.monotonic(), 0)))
            if frames:
                if not isinstance(frames[0], Hello):
                    raise SourceError("the producer did not start with HELLO")
                return frames
            if time.monotonic() >= deadline:
                raise SourceError("no HELLO from the producer")
        raise SourceError("stopping")

    def _put(self, session: Session, frames: list) -> None:
        """Queues frames for the writer; STATUS stays with the source."""
        last = 0
        for frame in frames:
            if isinstance(frame, Status):
                session.source.producer = frame
            else:
                last = max(last, _last_seq(frame))
        frames = [frame for frame in frames if not isinstance(frame, Status)]
        while frames and not self.stop.is_set():
            try:
                self._queue.put((session, frames), timeout=READ_TIMEOUT)
            except queue.Full:
                continue  # the writer is behind: the producer's ring holds the rest
            if last:
                with self._queued_lock:
                    instance = session.hello.instance
                    self._queued[instance] = max(self._queued.get(instance, 0), last)
                session.source.received_seq = max(session.source.received_seq, last)
            return

    # -- writer ----------------------------------------------------------

    def run(self) -> IngestTotals:
        readers = [
            threading.Thread(target=self._read_source, args=(source, state), name=source.spec)
            for source, state in zip(self.options.sources, self.sources, strict=True)
        ]
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
                    session, frames = self._queue.get(timeout=min(timeout, PUBLISH_SECONDS))
                    if not batch:
                        batch.started = time.monotonic()
                    self._account(batch, session, frames)
                except queue.Empty:
                    pass
                now = time.monotonic()
                if len(batch.rows) >= self.options.batch_records or (
                    batch and now >= batch.started + self.options.batch_seconds
                ):
                    batch = self._commit(batch)
                if now - published >= PUBLISH_SECONDS:
                    self._publish(running=True)
                    published = now
            # Clean stop: the readers are done reading; store what they queued.
            for reader in readers:
                reader.join()
            while True:
                try:
                    session, frames = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._account(batch, session, frames)
            self._commit(batch)
        finally:
            self.stop.set()
            self._publish(running=False)
        return self.totals

    def _state(self, session: Session) -> InstanceState:
        if session.state is None:
            hello = session.hello
            registered = self.writer.register(
                hello.instance,
                source=session.source.spec,
                name=hello.name,
                boot_id=hello.boot_id,
                producer_version=hello.producer_version,
                now_ns=time.time_ns(),
            )
            # One state object per instance across reconnects: the writer's
            # view of what is accounted for must not go back.
            session.state = self._states.setdefault(hello.instance, registered)
        return session.state

    def _account(self, batch: _Batch, session: Session, frames: list) -> None:
        """Every seq after the high-water mark is stored, lost or filtered,
        exactly once; a seq the producer skipped without a LOSS is a gap."""
        state = self._state(session)
        batch.sessions[state.id] = session
        min_level = self.options.min_level
        for frame in frames:
            if isinstance(frame, LogFrame):
                if frame.seq <= state.high_water:
                    continue  # already stored: a replay
                if frame.seq > state.high_water + 1:
                    self._lose(batch, state, state.high_water + 1, frame.seq - 1, None, None, "gap")
                if frame.level < min_level:
                    state.filtered += 1
                    self.totals.filtered += 1
                else:
                    batch.rows.append((state.id, *frame))
                    if self.echo is not None:
                        batch.echo.append((session, frame))
                state.high_water = frame.seq
            elif isinstance(frame, Loss):
                first = max(frame.first_seq, state.high_water + 1)
                if first > frame.last_seq:
                    continue
                if first > state.high_water + 1:
                    self._lose(batch, state, state.high_water + 1, first - 1, None, None, "gap")
                self._lose(
                    batch,
                    state,
                    first,
                    frame.last_seq,
                    frame.first_time_ns,
                    frame.last_time_ns,
                    frame.reason,
                )

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
        try:
            self.writer.commit(batch.rows, batch.losses, states, time.time_ns())
        except Exception as error:  # every failure of the store is fatal here
            raise KextlogError(f"cannot commit to the store: {error}") from error
        committed_ns = time.time_ns()
        self.totals.stored += len(batch.rows)
        self.totals.commits += 1
        # Kernel-to-commit latency: from the record's own timestamp.
        for row in batch.rows[::LATENCY_EVERY]:
            self._latency_recent.add(committed_ns - row[2])
            self._latency_run.add(committed_ns - row[2])
        for session in batch.sessions.values():
            if session.state is not None:
                session.ack(session.state.high_water)
        if self.echo is not None:
            for session, frame in batch.echo:
                self.echo(session, frame)
        return _Batch()

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
        if self.publish is not None:
            self.publish(self.snapshot(running))


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


def _last_seq(frame: object) -> int:
    if isinstance(frame, LogFrame):
        return frame.seq
    if isinstance(frame, Loss):
        return frame.last_seq
    return 0

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
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import KextlogError, SourceError
from .levels import Level
from .sources import Connection, Source
from .store import InstanceState, Writer
from .wire import Hello, LogFrame, Loss, encode_ack, encode_resume

log = logging.getLogger("kextlog.ingest")

HELLO_TIMEOUT = 5.0  # seconds a producer has to greet after connect
READ_TIMEOUT = 0.25  # how often readers look at the stop flag
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0


@dataclass
class IngestOptions:
    sources: list[Source]
    min_level: Level = Level.TRACE
    batch_records: int = 10_000
    batch_seconds: float = 0.1
    queue_batches: int = 32  # each is one read: the queue bounds the daemon's memory


@dataclass
class Session:
    """One connection to a producer, for the instance its HELLO announced."""

    source: Source
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


class Ingest:
    def __init__(
        self,
        writer: Writer,
        options: IngestOptions,
        stop: threading.Event,
        echo: Callable[[Session, LogFrame], None] | None = None,
    ) -> None:
        self.writer = writer
        self.options = options
        self.stop = stop
        self.echo = echo
        self.totals = IngestTotals()
        self._queue: queue.Queue[tuple[Session, list]] = queue.Queue(options.queue_batches)
        # The highest seq each instance has had queued in this process, so a
        # reconnect resumes after what is queued but not yet committed.
        self._queued: dict[str, int] = {}
        self._queued_lock = threading.Lock()
        self._states: dict[str, InstanceState] = {}

    # -- readers ---------------------------------------------------------

    def _read_source(self, source: Source) -> None:
        backoff = BACKOFF_FIRST
        reported = False
        while not self.stop.is_set():
            try:
                connection = source.connect()
            except SourceError as error:
                if not reported:
                    log.warning("%s; retrying", error)
                    reported = True
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            try:
                self._serve(source, connection)
                backoff = BACKOFF_FIRST
                reported = False
            except SourceError as error:
                log.warning("%s: %s; reconnecting", source.spec, error)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                connection.close()

    def _serve(self, source: Source, connection: Connection) -> None:
        frames = self._greeting(source, connection)
        hello = frames.pop(0)
        assert isinstance(hello, Hello)
        session = Session(source, connection, hello)
        with self._queued_lock:
            queued = self._queued.get(hello.instance, 0)
        resume = max(self.writer.high_water(hello.instance), queued) + 1
        connection.send(encode_resume(hello.instance_raw, resume))
        log.info(
            "%s: connected to %s %s, instance %s, resuming at seq %d",
            source.spec,
            hello.name,
            hello.producer_version,
            hello.instance,
            resume,
        )
        self._put(session, [hello])
        while not self.stop.is_set():
            frames = connection.read(READ_TIMEOUT)
            if frames:
                self._put(session, frames)

    def _greeting(self, source: Source, connection: Connection) -> list:
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
        last = max((_last_seq(frame) for frame in frames), default=0)
        while not self.stop.is_set():
            try:
                self._queue.put((session, frames), timeout=READ_TIMEOUT)
            except queue.Full:
                continue  # the writer is behind: the producer's ring holds the rest
            if last:
                with self._queued_lock:
                    instance = session.hello.instance
                    self._queued[instance] = max(self._queued.get(instance, 0), last)
            return

    # -- writer ----------------------------------------------------------

    def run(self) -> IngestTotals:
        readers = [
            threading.Thread(target=self._read_source, args=(source,), name=source.spec)
            for source in self.options.sources
        ]
        for reader in readers:
            reader.start()
        batch = _Batch()
        while not self.stop.is_set():
            timeout = self.options.batch_seconds
            if batch.rows or batch.losses or batch.sessions:
                timeout = max(batch.started + self.options.batch_seconds - time.monotonic(), 0)
            try:
                session, frames = self._queue.get(timeout=timeout)
                if not (batch.rows or batch.losses or batch.sessions):
                    batch.started = time.monotonic()
                self._account(batch, session, frames)
            except queue.Empty:
                pass
            if len(batch.rows) >= self.options.batch_records or (
                batch.sessions and time.monotonic() >= batch.started + self.options.batch_seconds
            ):
                batch = self._commit(batch)
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
        return self.totals

    def _state(self, session: Session) -> InstanceState:
        if session.state is None:
            hello = session.hello
            session.state = self.writer.register(
                hello.instance,
                source=session.source.spec,
                name=hello.name,
                boot_id=hello.boot_id,
                producer_version=hello.producer_version,
                now_ns=time.time_ns(),
            )
            # One state object per instance across reconnects: the writer's
            # view of what is accounted for must not go back.
            session.state = self._states.setdefault(hello.instance, session.state)
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
        log.warning(
            "instance %s: %d records lost (seqs %d..%d, %s)", state.uuid, count, first, last, reason
        )

    def _commit(self, batch: _Batch) -> _Batch:
        if not (batch.rows or batch.losses or batch.sessions):
            return batch
        states = [session.state for session in batch.sessions.values() if session.state]
        try:
            self.writer.commit(batch.rows, batch.losses, states, time.time_ns())
        except Exception as error:
            raise KextlogError(f"cannot commit to the store: {error}") from error
        self.totals.stored += len(batch.rows)
        self.totals.commits += 1
        for session in batch.sessions.values():
            if session.state is not None:
                session.ack(session.state.high_water)
        if self.echo is not None:
            for session, frame in batch.echo:
                self.echo(session, frame)
        return _Batch()


def _last_seq(frame: object) -> int:
    if isinstance(frame, LogFrame):
        return frame.seq
    if isinstance(frame, Loss):
        return frame.last_seq
    return 0

"""The reader threads, one per source.

Each connects (with backoff), answers HELLO with RESUME from where the store
stands for that instance, then reads what the producer pushes, decodes it
and hands each read's frames to the bounded queue as one Received item,
as fast as the producer pushes; while the queue is full it waits, and the
producer's ring holds the rest.  What the frames say of the source itself
(the producer's STATUS, the newest seq read, the input skipped as
malformed) the reader notes in the source's SourceState, which status
reads.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import KextlogError, SourceClosed, SourceDone, SourceError
from ..sources import Connection, Source
from ..store.errors import passing_failure
from ..store.writer import InstanceState, Writer
from ..wire import Frame, Hello, LogRun, LossFrame, Skipped, Status
from .accounting import Ledger

log = logging.getLogger("kextlog.ingest")

HELLO_TIMEOUT = 5.0  # seconds a producer has to greet after connect
READ_TIMEOUT = 0.25  # how often readers look at the stop flag
GATHER_BYTES, GATHER_SECONDS = 64 * 1024, 0.005  # see Readers._serve
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
DRAIN_READS = 64  # at a clean stop: reads of what producers sent since (16 MiB at most)
# Malformed input is reported once per burst: when none came for a while,
# and at least this often while it goes on.
SKIPPED_QUIET_SECONDS, SKIPPED_REPORT_SECONDS = 1.0, 5.0


class SkipTally:
    """The malformed input of one source (wire.Skipped): totals for `kextlog
    status`, and a warning once per burst rather than once per frame."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # its reader adds, the writer reports
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
    """What the daemon knows of one source; its reader writes it, status reads it."""

    spec: str
    connected: bool = False
    since_ns: int = 0  # when the current connection (or outage) began
    hello: Hello | None = None
    producer: Status | None = None  # the producer's latest STATUS
    received_seq: int = 0  # highest seq read from the current instance
    error: str | None = None
    finished: bool = False  # a --once source that handed over everything
    skipped: SkipTally = field(default_factory=SkipTally)

    def describe(self, state: InstanceState | None) -> dict:
        """The source as `kextlog status` shows it (JSON-ready), with the
        writer's state of its instance (None: none registered yet)."""
        hello, producer = self.hello, self.producer
        committed = state.high_water if state else None
        newest = max(self.received_seq, producer.next_seq - 1 if producer else 0)
        return {
            "source": self.spec,
            "connected": self.connected,
            "since_ns": self.since_ns,
            "error": self.error,
            "producer": f"{hello.name} {hello.producer_version}" if hello else None,
            "instance": hello.instance if hello else None,
            "committed_seq": committed,
            "lag": newest - committed if committed is not None else None,
            "lost": state.lost if state else None,
            "skipped": self.skipped.totals(),
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

    def note(self, frames: list[Frame]) -> None:
        """What frames just read say of the source."""
        for frame in frames:
            if isinstance(frame, (LogRun, LossFrame)):
                self.received_seq = frame.last_seq
            elif isinstance(frame, Status):
                self.producer = frame
            elif isinstance(frame, Skipped):
                self.skipped.add(frame)


@dataclass
class Session:
    """One connection to a producer, for the instance its HELLO announced."""

    source: SourceState
    connection: Connection
    hello: Hello
    ledger: Ledger | None = None  # set by the writer when it registers the instance

    def ack(self, seq: int) -> None:
        # A gone producer learns the same from the next connection's RESUME.
        with contextlib.suppress(OSError):
            self.connection.ack(seq)


@dataclass(frozen=True, slots=True)
class Received:
    """What the queue carries from a reader to the writer: the frames of one
    read, decoded.  A connection's first holds its HELLO first; the last
    read of a closed connection holds what its reader had left (a frame
    the producer left incomplete is truncated)."""

    session: Session
    frames: list[Frame]


class Readers:
    """The reader threads of the daemon's sources, and their queue.

    writer() is the store's writer of the moment (a reload may change it);
    states are the writer's instances, by id (uuid): a connection resumes
    after what is stored, and after what the writer has taken from an
    earlier connection but not stored yet (a replay of it would be skipped).
    The last --once source to finish sets stop."""

    def __init__(
        self,
        sources: list[Source],
        stop: threading.Event,
        queue_items: int,
        writer: Callable[[], Writer],
        states: Mapping[str, InstanceState],
    ) -> None:
        self.sources = [SourceState(source.spec) for source in sources]
        self.queue: queue.Queue[Received] = queue.Queue(queue_items)
        self._stop = stop
        self._writer = writer
        self._states = states
        self._owners: dict[str, str] = {}  # by instance: the source it belongs to (_claim)
        self._owners_lock = threading.Lock()  # readers claim instances at the same time
        self._stopped: list[Connection] = []  # by readers that stopped
        self._threads = [
            threading.Thread(target=self._read, args=(source, state), name=source.spec)
            for source, state in zip(sources, self.sources, strict=True)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    @property
    def failures(self) -> list[str]:
        """Why --once sources could not be read."""
        return [source.error for source in self.sources if source.finished and source.error]

    def report_skipped(self, now: float, ending: bool = False) -> None:
        """A warning per source on its burst of malformed input (SkipTally.report)."""
        for source in self.sources:
            line = source.skipped.report(now, ending)
            if line is not None:
                log.warning("%s: %s", source.spec, line)

    def close(self) -> None:
        """Closes the connections the readers left open at stop (until the
        last commit's ACK has gone).  What came since the readers stopped
        is read and dropped first: a socket closed with unread data is
        reset, and the producer's read fails before it reaches our last ACK."""
        for connection in self._stopped:
            with contextlib.suppress(KextlogError, OSError):
                for _ in range(DRAIN_READS):
                    if not connection.receive(0):
                        break
            connection.close()

    def _read(self, source: Source, state: SourceState) -> None:
        backoff = BACKOFF_FIRST
        state.since_ns = time.time_ns()
        once = getattr(source, "once", False)
        while not self._stop.is_set():
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
                self._stop.wait(backoff)
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
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            else:
                backoff = BACKOFF_FIRST
            finally:
                if self._stop.is_set():
                    self._stopped.append(connection)  # open until the last ACK (close())
                else:
                    connection.close()
                state.connected = False
                state.since_ns = time.time_ns()

    def _finished(self, state: SourceState) -> None:
        """A --once source has handed over all it had (or could not be read:
        state.error says why); the last one stops ingest."""
        if state.error is None:
            log.info("%s: all read", state.spec)
        state.finished = True
        if all(source.finished for source in self.sources):
            self._stop.set()

    def _serve(self, state: SourceState, connection: Connection) -> None:
        frames = self._greeting(connection, state)
        hello = frames[0]
        assert isinstance(hello, Hello)
        resume = self._resume(hello, state.spec)
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
        session = Session(state, connection, hello)
        self._hand_over(session, frames)
        try:
            while not self._stop.is_set():
                received = connection.receive(READ_TIMEOUT)
                if received:
                    self._hand_over(session, connection.decode(received))
                    # A trickle (a kext sends a datagram per message) is gathered
                    # for a moment: fewer, larger hand-overs cost the writer less
                    # than the wait costs in latency.
                    if sum(map(len, received)) < GATHER_BYTES:
                        time.sleep(GATHER_SECONDS)
        except SourceClosed:
            self._hand_over(session, connection.decode(None))
            raise

    def _resume(self, hello: Hello, spec: str) -> int:
        """Where the instance continues: after what is stored, and after what
        the writer holds of an earlier connection."""
        known = self._states.get(hello.instance)
        try:
            stored = self._writer().known(hello.instance)
        except Exception as error:
            what = passing_failure(error)
            if what is None:
                raise
            # An outage of the store (the writer reports it): connect again later.
            raise SourceError(f"cannot read the store ({what})") from error
        self._claim(hello.instance, spec, stored.source if stored else None)
        return 1 + max(
            hello.first_seq - 1 if stored is None else stored.high_water,
            known.high_water if known else -1,
        )

    def _claim(self, instance: str, spec: str, stored_source: str | None) -> None:
        """An instance id is the source's that announced it first (in the
        store, or since ingest started): another source that announces it is
        refused, or its records would be taken for the first one's, and the
        first one's skipped as replays while they are acknowledged."""
        with self._owners_lock:
            owner = self._owners.setdefault(instance, stored_source or spec)
        if owner != spec:
            raise SourceError(f"instance {instance} belongs to {owner}: refused")

    def _greeting(self, connection: Connection, state: SourceState) -> list[Frame]:
        """The first frames: HELLO, and what came with it."""
        deadline = time.monotonic() + HELLO_TIMEOUT
        while not self._stop.is_set():
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

    def _hand_over(self, session: Session, frames: list[Frame]) -> None:
        """Queues a read's frames for the writer; waits while it is behind:
        the producer's ring holds the rest."""
        session.source.note(frames)
        item = Received(session, frames)
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=READ_TIMEOUT)
                return
            except queue.Full:
                continue

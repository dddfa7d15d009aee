"""The ingest pipeline: reader threads -> bounded queue -> one batch writer.

The readers (readers.py) hand each read's frames to the queue; the writer,
the calling thread of run(), accounts for them (accounting.py) and commits
batches by count or by time, whichever comes first (committer.py), and
only after COMMIT returns sends each producer its ACK: the highest seq up
to which every record is stored, recorded as lost, or filtered.  Beside it
the pid index merge and the retention policy run now and then
(maintenance.py).

On request (reload set, SIGHUP) the writer commits and acknowledges what it
holds, then switches to what reopen() gives: options (not the sources:
they need a restart) and a writer, possibly on another database, in which
each known instance continues from its high-water mark.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..levels import Level
from ..records import LossReason, Record
from ..sources import Source
from ..store.pid_index import PidMerge
from ..store.retention import RetentionPolicy, apply, check
from ..store.schema import SEQ_MASK
from ..store.writer import InstanceState, Writer
from ..wire import SEQ_MAX, Hello
from .accounting import Batch, Ledger
from .committer import Committer, IngestTotals, Latencies
from .maintenance import Periodic
from .readers import Readers, Received, Session, SourceState

if SEQ_MASK != SEQ_MAX:  # the store's key packing must be the header's field bounds
    raise ImportError("KEXTLOG_SEQ_BITS changed in kextlog_wire.h: update kextlog_store.store")

log = logging.getLogger("kextlog.ingest")

PUBLISH_SECONDS = 1.0  # how often the daemon's state is published for `kextlog status`
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
    seal_interval_ns: int = 15 * 60 * 1_000_000_000  # between two seals, when sealed


class Ingest:
    def __init__(
        self,
        writer: Writer,
        options: IngestOptions,
        stop: threading.Event,
        echo: Callable[[Record], None] | None = None,
        publish: Callable[[dict], None] | None = None,
        reload: threading.Event | None = None,
        reopen: Callable[[], tuple[Writer, IngestOptions]] | None = None,
    ) -> None:
        if options.retention is not None:
            check(writer.engine, options.retention)  # refused at start, not every minute
        self.options = options
        self.stop = stop
        self.publish = publish
        self.reload = reload or threading.Event()  # set: commit, then switch to reopen()'s
        self.reopen = reopen
        self.totals = IngestTotals()
        self.committer = Committer(writer, stop, self.totals, self._wait, echo)
        self._states: dict[str, InstanceState] = {}  # by instance: one across reconnects
        self._greetings: dict[str, tuple[str, Hello]] = {}  # by instance: source, HELLO
        self._sessions: dict[int, Session] = {}  # by instance id: where its ACK goes
        self.readers = Readers(
            options.sources, stop, options.queue_batches, lambda: self.writer, self._states
        )
        self._merger: Periodic | None = None
        self._unindexed = 0  # records committed since the merge was last asked for
        self._started_ns = time.time_ns()
        self._publish_error: str | None = None
        self._echo = echo is not None

    @property
    def writer(self) -> Writer:
        return self.committer.writer

    @property
    def sources(self) -> list[SourceState]:
        return self.readers.sources

    @property
    def failures(self) -> list[str]:
        """Why --once sources could not be read."""
        return self.readers.failures

    def run(self) -> IngestTotals:
        retention = None
        if self.options.retention is not None or self.reopen is not None:  # a reload may add one
            retention = Periodic("retention", self._retain, lambda: self.options.retention_seconds)
            retention.start()
        self._start_merging()
        self.readers.start()
        try:
            batch = self._batch()
            published = 0.0
            while not self.stop.is_set():
                batch = self._turn(batch)
                now = time.monotonic()
                if now - published >= PUBLISH_SECONDS:
                    self.committer.seal(self.options.seal_interval_ns)
                    self._publish(running=True)
                    self.readers.report_skipped(now)
                    published = now
            # Clean stop: the readers are done reading; store what they queued.
            self.readers.join()
            if retention is not None:
                retention.finish()
            while True:
                try:
                    self._take(batch, self.readers.queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)
            self.committer.seal(0, stopping=True)
        finally:
            self.stop.set()
            self.readers.close()
            if retention is not None:
                retention.finish()
            self._stop_merging()
            self.readers.report_skipped(time.monotonic(), ending=True)
            self._publish(running=False)
        return self.totals

    def _turn(self, batch: Batch) -> Batch:
        """One turn of the writer: the next read, if one comes in time; the
        batch committed when full or old enough, or on reload."""
        timeout = self.options.batch_seconds
        if batch:
            timeout = max(batch.started + self.options.batch_seconds - time.monotonic(), 0)
        try:
            item = self.readers.queue.get(timeout=min(timeout, PUBLISH_SECONDS))
            if not batch:
                batch.started = time.monotonic()
            self._take(batch, item)
        except queue.Empty:
            pass
        if batch.count >= self.options.batch_records or (
            batch and time.monotonic() >= batch.started + self.options.batch_seconds
        ):
            batch = self._commit(batch)
        if self.reload.is_set():
            self.reload.clear()
            batch = self._commit(batch)
            self._reopen()
        return batch

    def _batch(self) -> Batch:
        return Batch(echo=[] if self._echo else None)

    def _take(self, batch: Batch, item: Received) -> None:
        """A read's frames into batch (accounting.Ledger)."""
        ledger = self._ledger(item.session)
        self._sessions[ledger.state.id] = item.session
        filtered = batch.filtered
        for loss in ledger.account(batch, item.frames, self.options.min_level, time.time_ns()):
            self.totals.lost += loss["count"]
            if loss["reason"] == LossReason.MALFORMED:
                continue  # reported with its burst of malformed input (SkipTally), not one by one
            log.warning(
                "instance %s: %d records lost (seqs %d..%d, %s)",
                ledger.state.uuid,
                loss["count"],
                loss["first_seq"],
                loss["last_seq"],
                loss["reason"],
            )
        self.totals.filtered += batch.filtered - filtered

    def _ledger(self, session: Session) -> Ledger:
        """The session's account, its instance registered (in the store, on
        first sight) when the writer first takes one of its reads."""
        if session.ledger is None:
            hello = session.hello
            registered = self.committer.write(
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
            session.ledger = Ledger(
                self._states.setdefault(hello.instance, registered), oldest_held=hello.oldest_seq
            )
            self._greetings[hello.instance] = (session.source.spec, hello)
        return session.ledger

    def _commit(self, batch: Batch) -> Batch:
        if not batch:
            return batch
        self.committer.commit(batch, self._sessions)
        self._unindexed += batch.count
        if self._unindexed >= PID_MERGE_RECORDS and self._merger is not None:
            self._unindexed = 0
            self._merger.wake()
        return self._batch()

    # -- upkeep beside the writer ------------------------------------------

    def _retain(self, _finishing: threading.Event) -> None:
        """The retention policy (a reload may change it), on a connection of
        its own: it deletes in small transactions and pauses between them,
        so the writer keeps committing (store.retention.apply)."""
        policy = self.options.retention
        if policy is None:
            return
        result = apply(self.writer.engine, policy, stop=self.stop)
        if result.removed or result.losses:
            log.info(
                "retention: removed %d records and %d loss rows; %d bytes in use",
                result.removed,
                result.losses,
                result.size_after,
            )

    def _start_merging(self) -> None:
        """pid_index merges on this store (store.pid_index.PidMerge): when
        enough records wait, or every PID_MERGE_SECONDS; a last one, without
        pauses, once the writer is done with the store."""
        merge = PidMerge(self.writer.engine, PID_MERGE_SLICE, self.writer.host)
        self._merger = Periodic(
            "pid index",
            lambda finishing: merge.merge(pause=finishing.wait),
            lambda: PID_MERGE_SECONDS,
            last_run=True,
        ).start()

    def _stop_merging(self) -> None:
        if self._merger is not None:
            self._merger.finish()

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
        # What the store holds is sealed before ingest may leave it (and a
        # reopened sealer of the same store loads the key this seal moved on).
        self.committer.seal(0)
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
        self.committer.writer = writer
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

    # -- status ------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        """Waits seconds, or until stop; the state is published meanwhile
        (`kextlog status` shows an outage of the store)."""
        end = time.monotonic() + seconds
        while not self.stop.is_set() and (left := end - time.monotonic()) > 0:
            self.stop.wait(min(left, PUBLISH_SECONDS))
            self._publish(running=True)

    def snapshot(self, running: bool) -> dict:
        """The daemon's state as `kextlog status` shows it (JSON-ready)."""
        committer = self.committer
        recent, committer.latency_recent = committer.latency_recent, Latencies()
        outage = committer.outage
        return {
            "pid": os.getpid(),
            "running": running,
            "started_ns": self._started_ns,
            "updated_ns": time.time_ns(),
            "stored": self.totals.stored,
            "lost": self.totals.lost,
            "filtered": self.totals.filtered,
            "commits": self.totals.commits,
            "store_outage": None if outage is None else outage.describe(),
            "latency_ms": {"recent": recent.summary(), "run": committer.latency_run.summary()},
            "sources": [
                source.describe(self._states.get(source.hello.instance) if source.hello else None)
                for source in self.sources
            ],
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

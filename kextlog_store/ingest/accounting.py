"""The accounting: every seq after an instance's high-water mark is stored,
lost or filtered, exactly once (docs/protocol.md, the delivery contract).

Pure: the frames of one read go in, records and losses come out in a Batch,
and the instance's state moves on; no threads, no store, no clock.  A seq
the producer skipped without a LOSS is a gap, one whose frame the reader
skipped is malformed, and one below the oldest the producer held when the
connection began (its HELLO's oldest_seq) was released: acknowledged to
another store, as the producer's RELEASED LOSS says when the RESUME comes
in time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..levels import Level
from ..records import LEVEL, SEQ, LossReason
from ..store.writer import InstanceState
from ..wire import Frame, LogRun, LossFrame, Skipped


@dataclass
class Batch:
    """What one commit writes: records by instance id (rows of
    records.ROW_FIELDS), the losses table's new rows, and the states of the
    instances it moves on (their high-water marks and counts, by id)."""

    rows: dict[int, list[tuple]] = field(default_factory=dict)
    count: int = 0  # records in rows
    losses: list[dict] = field(default_factory=list)
    states: dict[int, InstanceState] = field(default_factory=dict)
    filtered: int = 0  # records left out by the minimum level
    lost: int = 0  # seqs in losses
    # (instance id, row) of every record stored, in the order they came:
    # for --echo; None when nobody echoes.
    echo: list[tuple[int, tuple]] | None = None
    started: float = 0.0  # time.monotonic() of its first item

    def __bool__(self) -> bool:
        return bool(self.states)


@dataclass
class Ledger:
    """One connection's account of its instance: the instance's state,
    the oldest seq the producer held as the connection began (its HELLO's),
    and whether bytes were skipped since its last seq (a gap there is their
    records: malformed, not a gap)."""

    state: InstanceState
    oldest_held: int = 0
    skipping: bool = False

    def _missing(self, batch: Batch, first: int, last: int, now_ns: int) -> None:
        """Seqs first..last that never came, and no LOSS named."""
        released = min(last, self.oldest_held - 1)
        if first <= released:
            self._lose(batch, first, released, None, None, LossReason.RELEASED, now_ns)
            first = released + 1
        if first <= last:
            reason = LossReason.MALFORMED if self.skipping else LossReason.GAP
            self._lose(batch, first, last, None, None, reason, now_ns)

    def account(
        self, batch: Batch, frames: Iterable[Frame], min_level: Level, now_ns: int
    ) -> list[dict]:
        """Each seq of frames after the high-water mark into batch: stored
        (if at min_level or above, else filtered) or lost; returns the loss
        rows it added (recorded at now_ns)."""
        state = self.state
        batch.states[state.id] = state
        first_loss = len(batch.losses)
        for frame in frames:
            if isinstance(frame, LogRun):
                self._account_run(batch, frame, min_level, now_ns)
                self.skipping = False
            elif isinstance(frame, LossFrame):
                first = max(frame.first_seq, state.high_water + 1)
                if first <= frame.last_seq and first > state.high_water + 1:
                    self._missing(batch, state.high_water + 1, first - 1, now_ns)
                self.skipping = False
                if first > frame.last_seq:
                    continue
                times = frame.first_time_ns, frame.last_time_ns
                self._lose(batch, first, frame.last_seq, *times, frame.reason, now_ns)
            elif isinstance(frame, Skipped):
                self.skipping = True
        return batch.losses[first_loss:]

    def _account_run(self, batch: Batch, run: LogRun, min_level: Level, now_ns: int) -> None:
        state = self.state
        rows = run.rows
        if not (run.contiguous and run.first_seq == state.high_water + 1):
            # A replay overlapping what is stored, or seqs out of order: one
            # record at a time.  Live streams never come here.
            rows = []
            for row in run.rows:
                if row[SEQ] <= state.high_water:
                    continue
                if row[SEQ] > state.high_water + 1:
                    self._missing(batch, state.high_water + 1, row[SEQ] - 1, now_ns)
                self.skipping = False  # nothing was skipped between the rows of a run
                rows.append(row)
                state.high_water = row[SEQ]
        if not rows:
            return
        state.high_water = rows[-1][SEQ]
        if min_level > Level.TRACE:
            kept = [row for row in rows if row[LEVEL] >= min_level]
            state.filtered += len(rows) - len(kept)
            batch.filtered += len(rows) - len(kept)
            rows = kept
        batch.rows.setdefault(state.id, []).extend(rows)
        batch.count += len(rows)
        if batch.echo is not None:
            batch.echo.extend((state.id, row) for row in rows)

    def _lose(
        self,
        batch: Batch,
        first: int,
        last: int,
        first_time_ns: int | None,
        last_time_ns: int | None,
        reason: LossReason | str,
        now_ns: int,
    ) -> None:
        state = self.state
        count = last - first + 1
        batch.losses.append(
            {
                "instance_id": state.id,
                "first_seq": first,
                "last_seq": last,
                "count": count,
                "first_time_ns": first_time_ns,
                "last_time_ns": last_time_ns,
                "reason": str(reason),
                "recorded_ns": now_ns,
            }
        )
        batch.lost += count
        state.high_water = last
        state.lost += count

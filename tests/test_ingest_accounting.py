"""The accounting (ingest/accounting.py), without threads, sockets or a
store: frames in, records and losses out, every seq after the high-water
mark stored, lost or filtered exactly once."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from kextlog_store.ingest.accounting import Batch, Ledger
from kextlog_store.levels import Level
from kextlog_store.records import LossReason
from kextlog_store.store.writer import InstanceState
from kextlog_store.wire import Frame, LogRun, LossFrame, Skipped

NOW = 1_000


def state(high_water: int = 0, *, instance_id: int = 7) -> InstanceState:
    return InstanceState(instance_id, "ab" * 16, high_water, 0, 0, high_water)


def row(seq: int, level: Level = Level.INFO) -> tuple:
    return (seq, seq * 10, seq, int(level), 0, 42, 4242, "proc", f"message {seq}")


def run(*seqs: int, level: Level = Level.INFO) -> LogRun:
    rows = [row(seq, level) for seq in seqs]
    contiguous = all(b == a + 1 for a, b in itertools.pairwise(seqs))
    return LogRun(rows, contiguous)


def account(
    ledger: Ledger, *frames: Frame, min_level: Level = Level.TRACE, batch: Batch | None = None
) -> tuple[Batch, list[dict]]:
    batch = batch if batch is not None else Batch()
    added = ledger.account(batch, frames, min_level, NOW)
    return batch, added


def loss(first: int, last: int, reason: str, times: tuple = (None, None)) -> dict:
    return {
        "instance_id": 7, "first_seq": first, "last_seq": last, "count": last - first + 1,
        "first_time_ns": times[0], "last_time_ns": times[1], "reason": reason, "recorded_ns": NOW,
    }  # fmt: skip


def stored_seqs(batch: Batch) -> list[int]:
    return [stored[0] for rows in batch.rows.values() for stored in rows]


def test_a_live_run_is_stored_as_it_came() -> None:
    ledger = Ledger(state())
    frames = run(1, 2, 3)
    batch, added = account(ledger, frames)
    assert batch.rows == {7: frames.rows} and batch.rows[7][0] is frames.rows[0]  # no copies
    assert (batch.count, batch.losses, added, batch.lost, batch.filtered) == (3, [], [], 0, 0)
    assert batch.states == {7: ledger.state} and ledger.state.high_water == 3
    assert batch  # it moves an instance, so it is committed (and acknowledged)


def test_a_replay_stores_only_what_follows_the_high_water_mark() -> None:
    ledger = Ledger(state(high_water=5))
    batch, added = account(ledger, run(3, 4, 5, 6, 7))
    assert (stored_seqs(batch), added, ledger.state.high_water) == ([6, 7], [], 7)
    batch, _ = account(ledger, run(1, 2))  # all of it stored already
    assert (stored_seqs(batch), batch.count, ledger.state.high_water) == ([], 0, 7)


def test_seqs_skipped_without_a_loss_are_a_gap() -> None:
    ledger = Ledger(state())
    batch, added = account(ledger, run(1, 2), run(5, 6), run(8))
    assert stored_seqs(batch) == [1, 2, 5, 6, 8]
    assert added == batch.losses == [loss(3, 4, "gap"), loss(7, 7, "gap")]
    assert (batch.lost, ledger.state.lost, ledger.state.high_water) == (3, 3, 8)


def test_a_gap_inside_one_run_out_of_order() -> None:
    ledger = Ledger(state())
    batch, _ = account(ledger, run(1, 3, 2, 4))  # 2 comes after 3: already accounted as lost
    assert stored_seqs(batch) == [1, 3, 4]
    assert batch.losses == [loss(2, 2, "gap")]


def test_a_gap_after_skipped_bytes_is_malformed_until_the_next_record() -> None:
    ledger = Ledger(state())
    batch, _ = account(ledger, run(1), Skipped("bad magic", 96), run(3), run(5))
    assert batch.losses == [loss(2, 2, "malformed"), loss(4, 4, "gap")]
    assert ledger.skipping is False
    batch, _ = account(ledger, Skipped("truncated", 40))
    assert ledger.skipping is True  # carried to the next read of the connection
    batch, _ = account(ledger, LossFrame(8, 9, 100, 200, LossReason.RING_FULL))
    assert batch.losses == [loss(6, 7, "malformed"), loss(8, 9, "ring-full", (100, 200))]


def test_seqs_below_the_oldest_held_at_the_connect_were_released() -> None:
    """A RESUME too late for the producer: its stream began at the oldest
    record it held (its HELLO's oldest_seq); what precedes that was
    acknowledged to another store and released, not skipped."""
    ledger = Ledger(state(high_water=2), oldest_held=6)
    batch, _ = account(ledger, run(6, 7), run(9))
    assert batch.losses == [loss(3, 5, "released"), loss(8, 8, "gap")]
    # Across a LOSS frame too, and split where a gap runs past the oldest held.
    ledger = Ledger(state(high_water=2), oldest_held=6)
    batch, _ = account(ledger, LossFrame(8, 9, 100, 200, LossReason.RING_FULL))
    assert batch.losses == [
        loss(3, 5, "released"), loss(6, 7, "gap"), loss(8, 9, "ring-full", (100, 200))
    ]  # fmt: skip


def test_a_loss_frame_is_recorded_past_what_is_accounted_for() -> None:
    ledger = Ledger(state(high_water=10))
    batch, added = account(
        ledger,
        LossFrame(5, 12, 100, 200, LossReason.RELEASED),  # 5..10 accounted for already
        LossFrame(1, 9, None, None, LossReason.RING_FULL),  # all of it
        LossFrame(15, 15, None, None, "reason-7"),  # a reason this kextlog does not know
    )
    assert (
        added
        == batch.losses
        == [
            loss(11, 12, "released", (100, 200)),
            loss(13, 14, "gap"),
            loss(15, 15, "reason-7"),
        ]
    )
    assert all(type(added_loss["reason"]) is str for added_loss in added)  # as stored
    assert (ledger.state.high_water, ledger.state.lost, batch.lost) == (15, 5, 5)


def test_below_the_minimum_level_is_filtered_not_lost() -> None:
    ledger = Ledger(state())
    frames = LogRun([row(1, Level.DEBUG), row(2, Level.ERROR), row(3, Level.TRACE)], True)
    batch, _ = account(ledger, frames, min_level=Level.INFO)
    assert (stored_seqs(batch), batch.filtered, ledger.state.filtered) == ([2], 2, 2)
    assert (batch.losses, ledger.state.high_water) == ([], 3)


def test_echo_lists_what_is_stored_in_order() -> None:
    ledger = Ledger(state())
    batch, _ = account(ledger, run(1, 2), run(4), batch=Batch(echo=[]))
    assert batch.echo == [(7, row(1)), (7, row(2)), (7, row(4))]
    batch, _ = account(Ledger(state()), run(1))
    assert batch.echo is None


def test_two_instances_in_one_batch() -> None:
    first, second = Ledger(state(instance_id=1)), Ledger(state(instance_id=2))
    batch = Batch()
    account(first, run(1, 2), batch=batch)
    account(second, run(1), batch=batch)
    account(first, run(3), batch=batch)
    assert (batch.rows, batch.count) == ({1: [row(1), row(2), row(3)], 2: [row(1)]}, 4)
    assert set(batch.states) == {1, 2}


# Frames a producer (or a hostile one) may send: runs of seqs around the
# high-water mark, in or out of order, losses, malformed input between them.
seqs = st.integers(min_value=1, max_value=60)
frames = st.lists(
    st.one_of(
        st.lists(seqs, min_size=1, max_size=8).map(lambda found: run(*found)),
        st.tuples(seqs, seqs).map(
            lambda ends: LossFrame(min(ends), max(ends), None, None, LossReason.RING_FULL)
        ),
        st.just(Skipped("bad length", 8)),
    ),
    max_size=12,
)


@given(
    high_water=st.integers(min_value=0, max_value=20),
    reads=st.lists(frames, max_size=5),
    levels=st.sampled_from(list(Level)),
)
def test_every_seq_is_stored_lost_or_filtered_exactly_once(
    high_water: int, reads: list[list[Frame]], levels: Level
) -> None:
    start = high_water
    ledger = Ledger(state(high_water))
    batch = Batch()
    for read in reads:
        account(ledger, *read, min_level=levels, batch=batch)
    end = ledger.state.high_water
    stored = stored_seqs(batch)
    lost = [seq for gone in batch.losses for seq in range(gone["first_seq"], gone["last_seq"] + 1)]
    assert all(gone["count"] == gone["last_seq"] - gone["first_seq"] + 1 for gone in batch.losses)
    assert len(set(stored)) == len(stored) and not set(stored) & set(lost)
    assert len(set(lost)) == len(lost)
    accounted = len(stored) + len(lost) + ledger.state.filtered
    assert accounted == end - start  # each seq after the mark, once
    assert sorted(stored + lost) == [
        seq for seq in sorted(stored + lost) if start < seq <= end
    ]  # none at or below the mark
    assert (batch.count, batch.lost, batch.filtered) == (
        len(stored),
        len(lost),
        ledger.state.filtered,
    )

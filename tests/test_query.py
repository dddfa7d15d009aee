"""The read path: records() and entries() (records with the losses among
them), checked against the data the fixtures stored."""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from kextlog_store import store
from kextlog_store.errors import DatabaseError, UsageError
from kextlog_store.levels import Level
from kextlog_store.query import RecordFilter, entries, losses, records, select_losses
from kextlog_store.records import Entry, Loss, Record
from tests.conftest import NS, PopulatedStore

MINUTE = 60 * NS


@pytest.fixture
def engine(populated: PopulatedStore) -> Iterator[Engine]:
    engine = store.read_engine(populated.url)
    yield engine
    engine.dispose()


def fetch(engine: Engine, **fields: object) -> list:
    return list(records(engine, RecordFilter(**fields)))  # type: ignore[arg-type]


def test_the_fixture_covers_what_the_filters_need(populated: PopulatedStore) -> None:
    assert len(populated.records) == 300
    assert set(Counter(record.level for record in populated.records)) == set(Level)
    assert len({record.pid for record in populated.records}) == 6
    assert len({record.instance for record in populated.records}) == 2


def test_everything_in_logged_order(engine: Engine, populated: PopulatedStore) -> None:
    got = fetch(engine)
    assert got == list(populated.records)
    keys = [(record.time_ns, record.instance, record.seq) for record in got]
    assert [key[0] for key in keys] == sorted(key[0] for key in keys)


def test_ties_order_by_instance_then_seq(engine: Engine, populated: PopulatedStore) -> None:
    first, second = (instance.uuid for instance in populated.instances)
    tied = [(a, b) for a, b in itertools.pairwise(fetch(engine)) if a.time_ns == b.time_ns]
    across = [(a, b) for a, b in tied if a.instance != b.instance]
    within = [(a, b) for a, b in tied if a.instance == b.instance]
    assert across and within  # the fixture made both kinds
    # Instance 1 was stored first although its uuid sorts last.
    assert all((a.instance, b.instance) == (first, second) for a, b in across)
    assert all(a.seq < b.seq for a, b in within)


def test_records_carry_every_field(engine: Engine, populated: PopulatedStore) -> None:
    got = fetch(engine)
    wide_tid = [record for record in got if record.tid > 2**32]
    assert wide_tid and all(record.seq == 5 for record in wide_tid)
    assert {record.source for record in got} == {"unix:/run/sim-a.sock", "unix:/run/sim-b.sock"}
    assert {record.flags for record in got} == {0, 1}
    assert all(isinstance(record.level, Level) for record in got)
    assert any("café ✓" in record.message for record in got)


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ((Level.WARNING, Level.ERROR), {Level.WARNING, Level.ERROR}),
        ((Level.ERROR, Level.ERROR), {Level.ERROR}),
        ((Level.DEBUG, Level.INFO), {Level.DEBUG, Level.INFO}),
        ((Level.TRACE, Level.TRACE), {Level.TRACE}),
        ((Level.TRACE, Level.ERROR), set(Level)),
    ],
)
def test_levels(
    engine: Engine, populated: PopulatedStore, levels: tuple[Level, Level], expected: set[Level]
) -> None:
    got = fetch(engine, levels=levels)
    assert got == populated.select(levels=expected)
    assert got  # never vacuous


def test_since_and_until(engine: Engine, populated: PopulatedStore) -> None:
    since = populated.now_ns - 10 * MINUTE
    until = populated.now_ns - 60 * MINUTE
    recent = fetch(engine, since_ns=since)
    assert recent == populated.select(since_ns=since)
    assert recent and all(record.time_ns >= since for record in recent)
    old = fetch(engine, until_ns=until)
    assert old == populated.select(until_ns=until)
    assert old and all(record.time_ns <= until for record in old)
    window = fetch(engine, since_ns=until, until_ns=since)
    assert window == populated.select(since_ns=until, until_ns=since)
    assert len(recent) + len(old) + len(window) == len(populated.records)


def test_bounds_are_inclusive(engine: Engine, populated: PopulatedStore) -> None:
    target = populated.records[123]
    got = fetch(engine, since_ns=target.time_ns, until_ns=target.time_ns)
    assert target in got
    assert all(record.time_ns == target.time_ns for record in got)


@pytest.mark.parametrize("pids", [(312,), (1, 4242), (312, 312, 88), (99999,)])
def test_pids(engine: Engine, populated: PopulatedStore, pids: tuple[int, ...]) -> None:
    assert fetch(engine, pids=pids) == populated.select(pids=pids)


def test_filters_combine(engine: Engine, populated: PopulatedStore) -> None:
    since = populated.now_ns - 60 * MINUTE
    got = fetch(engine, levels=(Level.WARNING, Level.ERROR), since_ns=since, pids=(312, 88))
    expected = populated.select(levels={Level.WARNING, Level.ERROR}, since_ns=since, pids={312, 88})
    assert got == expected
    assert got


@pytest.mark.parametrize("lines", [0, 1, 5, 299, 300, 1000])
def test_lines_are_the_last_n_in_logged_order(
    engine: Engine, populated: PopulatedStore, lines: int
) -> None:
    expected = list(populated.records)[-lines:] if lines else []
    assert fetch(engine, lines=lines) == expected


def test_lines_apply_after_the_filters(engine: Engine, populated: PopulatedStore) -> None:
    errors = populated.select(levels={Level.ERROR})
    assert fetch(engine, levels=(Level.ERROR, Level.ERROR), lines=3) == errors[-3:]


def test_negative_lines_are_refused() -> None:
    with pytest.raises(UsageError):
        RecordFilter(lines=-1)


def test_results_stream(engine: Engine, populated: PopulatedStore) -> None:
    iterator = records(engine, RecordFilter())
    assert next(iterator) == populated.records[0]
    iterator.close()


def test_missing_database_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "kextlog.db"
    with pytest.raises(DatabaseError, match="no kextlog database at"):
        store.read_engine(store.database_url(str(path)))
    assert not path.exists() and not path.parent.exists()


def test_a_database_that_is_not_kextlogs(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    engine = store.read_engine(store.database_url(str(path)))
    with pytest.raises(DatabaseError, match="not a kextlog database") as caught:
        fetch(engine)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    engine = store.read_engine(store.database_url(str(path)))
    with pytest.raises(DatabaseError, match="not a database"):
        fetch(engine)


def test_an_unknown_level_in_the_store_is_a_database_error(populated: PopulatedStore) -> None:
    with sqlite3.connect(populated.path) as connection:
        connection.execute("UPDATE records SET level = 9 WHERE seq = 1")
    connection.close()
    engine = store.read_engine(populated.url)
    with pytest.raises(DatabaseError, match="unknown level 9"):
        fetch(engine)
    engine.dispose()


def test_reading_while_a_writer_holds_its_transaction(
    engine: Engine, populated: PopulatedStore
) -> None:
    writer = sqlite3.connect(populated.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM records")
    try:
        assert fetch(engine) == list(populated.records)  # WAL: the reader sees the last commit
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# --- losses among the records --------------------------------------------


@pytest.fixture
def lossy_engine(lossy: PopulatedStore) -> Iterator[Engine]:
    engine = store.read_engine(lossy.url)
    yield engine
    engine.dispose()


def fetch_entries(engine: Engine, **fields: object) -> list[Entry]:
    return list(entries(engine, RecordFilter(**fields)))  # type: ignore[arg-type]


def test_the_lossy_fixture_places_losses_by_each_rule(lossy: PopulatedStore) -> None:
    # Known time: the first missing record's.
    assert lossy.loss(1, 50).time_ns == lossy.loss(1, 50).first_time_ns
    # Unknown: the instance's first stored record after it (seqs 4..6 were pruned).
    assert lossy.loss(1, 1).first_time_ns is None
    assert lossy.loss(1, 1).time_ns == lossy.record(1, 7).time_ns
    assert lossy.loss(2, 55).time_ns == lossy.record(2, 61).time_ns
    # Unknown and nothing stored after it: when it was recorded.
    assert lossy.loss(2, 121).time_ns == lossy.loss(2, 121).recorded_ns == lossy.now_ns - NS
    # Ties with records of the other instance, which sorts first.
    assert lossy.loss(2, 24).time_ns == lossy.record(1, 41).time_ns
    assert lossy.loss(2, 55).time_ns == lossy.record(1, 101).time_ns
    assert len(lossy.records) == 300 - 3 - 3 - 2 - 3 - 6 - 2 - 2
    assert [loss.reason for loss in lossy.losses].count("gap") == 2


def test_losses_are_placed_and_ordered(lossy_engine: Engine, lossy: PopulatedStore) -> None:
    got = losses(lossy_engine)
    assert got == list(lossy.losses)
    assert [(loss.instance == lossy.instances[0].uuid, loss.first_seq) for loss in got] == [
        (True, 1),
        (False, 24),
        (True, 50),
        (False, 55),
        (True, 150),
        (False, 110),
        (True, 181),
        (False, 121),
    ]
    assert got[0] == Loss(
        time_ns=lossy.record(1, 7).time_ns,
        instance=lossy.instances[0].uuid,
        first_seq=1,
        last_seq=3,
        count=3,
        reason="released",
        first_time_ns=None,
        last_time_ns=None,
        recorded_ns=lossy.now_ns - NS,
        source="unix:/run/sim-a.sock",
    )


def test_losses_in_a_window_by_their_placed_time(
    lossy_engine: Engine, lossy: PopulatedStore
) -> None:
    tie = lossy.record(1, 101).time_ns
    assert losses(lossy_engine, since_ns=tie, until_ns=tie) == [lossy.loss(2, 55)]
    assert losses(lossy_engine, since_ns=tie + 1, until_ns=lossy.now_ns - 2 * NS) == [
        lossy.loss(1, 150),
        lossy.loss(2, 110),
        lossy.loss(1, 181),
    ]
    assert losses(lossy_engine, until_ns=tie - 1) == [
        lossy.loss(1, 1),
        lossy.loss(2, 24),
        lossy.loss(1, 50),
    ]


def test_entries_put_each_loss_in_place(lossy_engine: Engine, lossy: PopulatedStore) -> None:
    got = fetch_entries(lossy_engine)
    assert got == lossy.entries()
    assert [entry for entry in got if isinstance(entry, Record)] == list(lossy.records)
    assert [entry for entry in got if isinstance(entry, Loss)] == list(lossy.losses)

    def around(entry: Entry) -> list[Entry]:
        at = got.index(entry)
        return got[at - 1 : at + 2]

    # Unknown time: just before the instance's first stored record after it.
    assert got.index(lossy.loss(1, 1)) + 1 == got.index(lossy.record(1, 7))
    assert got.index(lossy.loss(2, 110)) + 1 == got.index(lossy.record(2, 112))
    # Known time: after the records before it, before the ones after it.
    before, _, after = around(lossy.loss(1, 50))
    assert before.time_ns < lossy.loss(1, 50).time_ns < after.time_ns
    assert lossy.record(1, 49).time_ns <= before.time_ns
    # Ties: the loss goes before every record of its time, of either instance.
    assert around(lossy.loss(2, 24))[1:] == [lossy.loss(2, 24), lossy.record(1, 41)]
    assert around(lossy.loss(2, 55))[1:] == [lossy.loss(2, 55), lossy.record(1, 101)]
    assert got[got.index(lossy.record(1, 101)) + 1] == lossy.record(2, 61)
    # After the last record: known time, then the time it was recorded.
    assert got[-3:] == [lossy.records[-1], lossy.loss(1, 181), lossy.loss(2, 121)]


def test_entries_without_losses_are_the_records(engine: Engine, populated: PopulatedStore) -> None:
    assert fetch_entries(engine) == list(populated.records)
    assert fetch_entries(engine, lines=7) == list(populated.records[-7:])


@pytest.mark.parametrize(
    ("since_min", "until_min"),
    [(60, None), (10, None), (30, 10), (None, 60), (None, 30), (200, 100)],
)
def test_entries_in_a_window(
    lossy_engine: Engine,
    lossy: PopulatedStore,
    since_min: int | None,
    until_min: int | None,
) -> None:
    since = None if since_min is None else lossy.now_ns - since_min * MINUTE
    until = None if until_min is None else lossy.now_ns - until_min * MINUTE
    got = fetch_entries(lossy_engine, since_ns=since, until_ns=until)
    assert got == lossy.entries(since_ns=since, until_ns=until)
    shown = [entry for entry in got if isinstance(entry, Loss)]
    assert shown and len(shown) < len(lossy.losses)  # never vacuous, never everything


def test_window_bounds_apply_to_where_a_loss_is_placed(
    lossy_engine: Engine, lossy: PopulatedStore
) -> None:
    tie = lossy.record(1, 101).time_ns
    assert fetch_entries(lossy_engine, since_ns=tie, until_ns=tie) == [
        lossy.loss(2, 55),
        lossy.record(1, 101),
        lossy.record(2, 61),
    ]
    assert lossy.loss(2, 55) not in fetch_entries(lossy_engine, until_ns=tie - 1)
    assert lossy.loss(2, 55) not in fetch_entries(lossy_engine, since_ns=tie + 1)
    # A window without records still shows the losses in it.
    assert fetch_entries(lossy_engine, since_ns=lossy.now_ns - 4 * NS) == [
        lossy.loss(1, 181),
        lossy.loss(2, 121),
    ]


def test_level_and_pid_filters_never_hide_losses(
    lossy_engine: Engine, lossy: PopulatedStore
) -> None:
    got = fetch_entries(lossy_engine, levels=(Level.ERROR, Level.ERROR), pids=(312,))
    assert got == lossy.entries(levels={Level.ERROR}, pids={312})
    assert [entry for entry in got if isinstance(entry, Record)] == lossy.select(
        levels={Level.ERROR}, pids={312}
    )
    assert [entry for entry in got if isinstance(entry, Loss)] == list(lossy.losses)
    # The record this loss is placed before is filtered out; the loss stays.
    assert lossy.record(2, 112).level is Level.DEBUG
    assert lossy.loss(2, 110) in got


@pytest.mark.parametrize("lines", [0, 1, 2, 3, 10, 40, 100, 200, 278, 279, 280, 500])
def test_lines_show_the_tail_from_the_first_shown_record(
    lossy_engine: Engine, lossy: PopulatedStore, lines: int
) -> None:
    assert fetch_entries(lossy_engine, lines=lines) == lossy.entries(lines=lines)


def test_lines_examples(lossy_engine: Engine, lossy: PopulatedStore) -> None:
    last = lossy.records[-1]
    # The losses after the last record are the newest part of the log.
    assert fetch_entries(lossy_engine, lines=1) == [last, lossy.loss(1, 181), lossy.loss(2, 121)]
    # ... up to --until.
    until = lossy.now_ns - 2 * NS
    assert fetch_entries(lossy_engine, lines=1, until_ns=until) == [last, lossy.loss(1, 181)]
    assert fetch_entries(lossy_engine, lines=0) == []
    # A loss at the time of the first shown record comes before it: left out.
    tied = lossy.record(1, 101)
    start = lossy.records.index(tied)
    tail = fetch_entries(lossy_engine, lines=len(lossy.records) - start)
    assert tail[0] == tied and lossy.loss(2, 55) not in tail
    assert [entry for entry in tail if isinstance(entry, Loss)] == [
        lossy.loss(1, 150),
        lossy.loss(2, 110),
        lossy.loss(1, 181),
        lossy.loss(2, 121),
    ]
    # One record more and it is in.
    longer = fetch_entries(lossy_engine, lines=len(lossy.records) - start + 1)
    assert longer[:3] == [lossy.records[start - 1], lossy.loss(2, 55), tied]
    # When -n covers every record, it changes nothing: the first loss is shown.
    assert fetch_entries(lossy_engine, lines=len(lossy.records)) == fetch_entries(lossy_engine)
    assert fetch_entries(lossy_engine, lines=len(lossy.records) - 1)[0] == lossy.records[1]
    window = fetch_entries(lossy_engine, since_ns=tied.time_ns)
    assert window[:2] == [lossy.loss(2, 55), tied]
    assert fetch_entries(lossy_engine, since_ns=tied.time_ns, lines=1000) == window


def test_lines_with_filters(lossy_engine: Engine, lossy: PopulatedStore) -> None:
    fields = {"levels": (Level.ERROR, Level.ERROR), "since_ns": lossy.now_ns - 60 * MINUTE}
    got = fetch_entries(lossy_engine, lines=3, **fields)
    assert got == lossy.entries(levels={Level.ERROR}, since_ns=fields["since_ns"], lines=3)
    errors = lossy.select(levels={Level.ERROR}, since_ns=lossy.now_ns - 60 * MINUTE)
    assert [entry for entry in got if isinstance(entry, Record)] == errors[-3:]
    # No errors at all: the losses in the window, as without -n.
    none = fetch_entries(lossy_engine, lines=5, pids=(99999,))
    assert none == list(lossy.losses)


def test_entries_take_two_statements_however_many_losses(
    lossy_engine: Engine, lossy: PopulatedStore
) -> None:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(lossy_engine, "before_cursor_execute", count)
    try:
        assert len(fetch_entries(lossy_engine)) == len(lossy.records) + len(lossy.losses)
        assert len(statements) == 2
        statements.clear()
        fetch_entries(lossy_engine, lines=5)
        assert len(statements) == 2
    finally:
        event.remove(lossy_engine, "before_cursor_execute", count)


def test_placing_a_loss_searches_the_seq_index(lossy: PopulatedStore) -> None:
    statement = select_losses(lossy.now_ns - 60 * MINUTE, lossy.now_ns)
    sql = str(statement.compile(dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True}))
    with sqlite3.connect(f"file:{lossy.path}?mode=ro", uri=True) as connection:
        plan = [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql)]
    connection.close()
    touching = [step for step in plan if " records " in f" {step} "]
    assert touching, plan
    assert all(
        step.startswith("SEARCH records USING ") and "(instance_id=? AND seq>?)" in step
        for step in touching
    ), plan


def test_entries_stream(lossy_engine: Engine, lossy: PopulatedStore) -> None:
    iterator = entries(lossy_engine, RecordFilter())
    assert next(iterator) == lossy.entries()[0]
    iterator.close()


def test_entries_of_a_database_that_is_not_kextlogs(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    engine = store.read_engine(store.database_url(str(path)))
    for fields in ({}, {"lines": 3}):
        with pytest.raises(DatabaseError, match="not a kextlog database"):
            fetch_entries(engine, **fields)
    with pytest.raises(DatabaseError, match="not a kextlog database"):
        losses(engine)
    engine.dispose()

"""The read path: records(), checked against the data the fixture stored."""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kextlog_store import store
from kextlog_store.errors import DatabaseError, UsageError
from kextlog_store.levels import Level
from kextlog_store.query import RecordFilter, records
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

"""The read path: records() and entries() (records with the losses among
them), checked against the data the fixtures stored."""

from __future__ import annotations

import itertools
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text as sql_text

from kextlog_store import query
from kextlog_store.conditions import SQLITE, Sql
from kextlog_store.errors import DatabaseError, UsageError
from kextlog_store.follow import follow
from kextlog_store.levels import Level
from kextlog_store.query import (
    CursorKeeper,
    RecordFilter,
    entries,
    found,
    losses,
    records,
    select_losses,
)
from kextlog_store.records import Cursor, Entry, Loss, Record, Records
from kextlog_store.regex import grep_pattern
from kextlog_store.store import schema
from kextlog_store.store.engine import Reader, Reading, reader, write_engine
from kextlog_store.store.location import database_url
from tests.conftest import NS, Kextlog, PopulatedStore, make_records

MINUTE = 60 * NS
BOTH_BACKENDS = True


def execute(url: str, sql: str, **params: object) -> None:
    """Changes the store behind the read path's back (SQLite or PostgreSQL)."""
    engine = write_engine(url)
    with engine.begin() as connection:
        connection.execute(sql_text(sql), params)
    engine.dispose()


@pytest.fixture
def engine(populated: PopulatedStore) -> Iterator[Reader]:
    engine = reader(populated.url)
    yield engine
    engine.dispose()


def fetch(engine: Reader, **fields: object) -> list:
    return list(records(engine, RecordFilter(**fields)))  # type: ignore[arg-type]


def test_the_fixture_covers_what_the_filters_need(populated: PopulatedStore) -> None:
    assert len(populated.records) == 300
    assert set(Counter(record.level for record in populated.records)) == set(Level)
    assert len({record.pid for record in populated.records}) == 6
    assert len({record.instance for record in populated.records}) == 2


def test_everything_in_logged_order(engine: Reader, populated: PopulatedStore) -> None:
    got = fetch(engine)
    assert got == list(populated.records)
    keys = [(record.time_ns, record.instance, record.seq) for record in got]
    assert [key[0] for key in keys] == sorted(key[0] for key in keys)


def test_ties_order_by_instance_then_seq(engine: Reader, populated: PopulatedStore) -> None:
    first, second = (instance.uuid for instance in populated.instances)
    tied = [(a, b) for a, b in itertools.pairwise(fetch(engine)) if a.time_ns == b.time_ns]
    across = [(a, b) for a, b in tied if a.instance != b.instance]
    within = [(a, b) for a, b in tied if a.instance == b.instance]
    assert across and within  # the fixture made both kinds
    # Instance 1 was stored first although its uuid sorts last.
    assert all((a.instance, b.instance) == (first, second) for a, b in across)
    assert all(a.seq < b.seq for a, b in within)


def test_records_carry_every_field(engine: Reader, populated: PopulatedStore) -> None:
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
    engine: Reader, populated: PopulatedStore, levels: tuple[Level, Level], expected: set[Level]
) -> None:
    got = fetch(engine, levels=levels)
    assert got == populated.select(levels=expected)
    assert got  # never vacuous


def test_since_and_until(engine: Reader, populated: PopulatedStore) -> None:
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


def test_bounds_are_inclusive(engine: Reader, populated: PopulatedStore) -> None:
    target = populated.records[123]
    got = fetch(engine, since_ns=target.time_ns, until_ns=target.time_ns)
    assert target in got
    assert all(record.time_ns == target.time_ns for record in got)


@pytest.mark.parametrize("pids", [(312,), (1, 4242), (312, 312, 88), (99999,)])
def test_pids(engine: Reader, populated: PopulatedStore, pids: tuple[int, ...]) -> None:
    assert fetch(engine, pids=pids) == populated.select(pids=pids)


def test_filters_combine(engine: Reader, populated: PopulatedStore) -> None:
    since = populated.now_ns - 60 * MINUTE
    got = fetch(engine, levels=(Level.WARNING, Level.ERROR), since_ns=since, pids=(312, 88))
    expected = populated.select(levels={Level.WARNING, Level.ERROR}, since_ns=since, pids={312, 88})
    assert got == expected
    assert got


@pytest.mark.parametrize("lines", [0, 1, 5, 299, 300, 1000])
def test_lines_are_the_last_n_in_logged_order(
    engine: Reader, populated: PopulatedStore, lines: int
) -> None:
    expected = list(populated.records)[-lines:] if lines else []
    assert fetch(engine, lines=lines) == expected


def test_lines_apply_after_the_filters(engine: Reader, populated: PopulatedStore) -> None:
    errors = populated.select(levels={Level.ERROR})
    assert fetch(engine, levels=(Level.ERROR, Level.ERROR), lines=3) == errors[-3:]


def test_negative_lines_are_refused() -> None:
    with pytest.raises(UsageError):
        RecordFilter(lines=-1)


def test_results_stream(engine: Reader, populated: PopulatedStore) -> None:
    iterator = records(engine, RecordFilter())
    assert next(iterator) == populated.records[0]
    iterator.close()


def test_missing_database_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "kextlog.db"
    with pytest.raises(DatabaseError, match="no kextlog database at"):
        reader(database_url(str(path)))
    assert not path.exists() and not path.parent.exists()


def test_a_database_that_is_not_kextlogs(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    engine = reader(database_url(str(path)))
    with pytest.raises(DatabaseError, match="not a kextlog database") as caught:
        fetch(engine)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match=r"junk\.db is damaged or not a database"):
        reader(database_url(str(path)))  # refused before any query


def test_an_unknown_level_in_the_store_is_a_database_error(populated: PopulatedStore) -> None:
    execute(populated.url, "UPDATE records SET level = 9 WHERE seq = 1")
    engine = reader(populated.url)
    with pytest.raises(DatabaseError, match="unknown level 9"):
        fetch(engine)
    engine.dispose()


@pytest.mark.sqlite_only
def test_records_of_an_instance_the_store_lacks_are_a_database_error(
    kextlog: Kextlog, populated: PopulatedStore
) -> None:
    """The records are read without a join of their instances: records
    whose instance row is gone (deleted behind kextlog's back; SQLite does
    not enforce the key) are told, not left out."""
    with sqlite3.connect(populated.path) as connection:
        connection.execute("DELETE FROM instances WHERE id = 2")
    result = kextlog("query")
    assert result.returncode == 1
    assert result.stderr == (
        "kextlog: error: records of instance row 2, which the store does not have\n"
    )


@pytest.mark.sqlite_only
def test_reading_while_a_writer_holds_its_transaction(
    engine: Reader, populated: PopulatedStore
) -> None:
    writer = sqlite3.connect(populated.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM records")
    try:
        assert fetch(engine) == list(populated.records)  # WAL: the reader sees the last commit
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@pytest.mark.sqlite_only
def test_a_reader_stops_its_statements_at_its_deadline(populated: PopulatedStore) -> None:
    """kextlog web's time limit: a statement still running at the deadline
    ends in a DatabaseError; before it, reading is as ever."""
    late = reader(populated.url, deadline=time.monotonic() - 1)
    try:
        with pytest.raises(DatabaseError, match="interrupted"):
            fetch(late)
    finally:
        late.dispose()
    on_time = reader(populated.url, deadline=time.monotonic() + 600)
    try:
        assert fetch(on_time) == list(populated.records)
    finally:
        on_time.dispose()


# --- losses among the records --------------------------------------------


@pytest.fixture
def lossy_engine(lossy: PopulatedStore) -> Iterator[Reader]:
    engine = reader(lossy.url)
    yield engine
    engine.dispose()


def fetch_entries(engine: Reader, **fields: object) -> list[Entry]:
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


def test_losses_are_placed_and_ordered(lossy_engine: Reader, lossy: PopulatedStore) -> None:
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
    lossy_engine: Reader, lossy: PopulatedStore
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


def test_entries_put_each_loss_in_place(lossy_engine: Reader, lossy: PopulatedStore) -> None:
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


@pytest.mark.parametrize("rows", [1, 2, 3, 7])
@pytest.mark.parametrize(
    "fields",
    [{}, {"lines": 40}, {"lines": 280}, {"reverse": True}, {"lines": 40, "reverse": True},
     {"since_ns": -30 * MINUTE}, {"levels": (Level.WARNING, Level.ERROR)}],
)  # fmt: skip
def test_batches_are_cut_where_losses_come_between_their_records(
    lossy_engine: Reader,
    lossy: PopulatedStore,
    monkeypatch: pytest.MonkeyPatch,
    rows: int,
    fields: dict[str, Any],
) -> None:
    """found() hands records over in batches (Records) of up to BATCH_ROWS:
    with batches of a few rows, losses fall at their edges and inside them."""
    monkeypatch.setattr(query, "BATCH_ROWS", rows)
    expected = dict(fields)
    if "since_ns" in fields:
        fields = expected = {"since_ns": lossy.now_ns + fields["since_ns"]}
    if "levels" in fields:
        expected = {"levels": {Level.WARNING, Level.ERROR}}
    with closing(found(lossy_engine, RecordFilter(**fields))) as batches:
        got = list(batches)
    assert all(len(entry) in range(1, rows + 1) for entry in got if isinstance(entry, Records))
    assert any(isinstance(entry, Loss) for entry in got)
    flat = [item for entry in got for item in (entry if isinstance(entry, Records) else [entry])]
    assert flat == lossy.entries(**expected)


def test_entries_without_losses_are_the_records(engine: Reader, populated: PopulatedStore) -> None:
    assert fetch_entries(engine) == list(populated.records)
    assert fetch_entries(engine, lines=7) == list(populated.records[-7:])


@pytest.mark.parametrize(
    ("since_min", "until_min"),
    [(60, None), (10, None), (30, 10), (None, 60), (None, 30), (200, 100)],
)
def test_entries_in_a_window(
    lossy_engine: Reader,
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
    lossy_engine: Reader, lossy: PopulatedStore
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
    lossy_engine: Reader, lossy: PopulatedStore
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
    lossy_engine: Reader, lossy: PopulatedStore, lines: int
) -> None:
    assert fetch_entries(lossy_engine, lines=lines) == lossy.entries(lines=lines)


def test_lines_examples(lossy_engine: Reader, lossy: PopulatedStore) -> None:
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


def test_lines_with_filters(lossy_engine: Reader, lossy: PopulatedStore) -> None:
    fields = {"levels": (Level.ERROR, Level.ERROR), "since_ns": lossy.now_ns - 60 * MINUTE}
    got = fetch_entries(lossy_engine, lines=3, **fields)
    assert got == lossy.entries(levels={Level.ERROR}, since_ns=fields["since_ns"], lines=3)
    errors = lossy.select(levels={Level.ERROR}, since_ns=lossy.now_ns - 60 * MINUTE)
    assert [entry for entry in got if isinstance(entry, Record)] == errors[-3:]
    # No errors at all: the losses in the window, as without -n.
    none = fetch_entries(lossy_engine, lines=5, pids=(99999,))
    assert none == list(lossy.losses)


def test_entries_take_three_statements_however_many_losses(
    lossy_engine: Reader, lossy: PopulatedStore
) -> None:
    """The losses, the records, and their instances (read once, not joined)."""
    counting = Counting(lossy_engine)
    assert len(fetch_entries(counting)) == len(lossy.records) + len(lossy.losses)
    assert len(counting.statements) == 3
    assert "FROM instances" in counting.statements[-1]
    counting.statements.clear()
    fetch_entries(counting, lines=5)
    assert len(counting.statements) == 3


class Counting:
    """A reader that keeps the statements run through it."""

    def __init__(self, inner: Reader) -> None:
        self.inner = inner
        self.statements: list[str] = []

    @contextmanager
    def connect(self) -> Iterator[Reading]:
        with self.inner.connect() as reading:
            yield CountingReading(reading, self.statements)

    def dispose(self) -> None:
        self.inner.dispose()


class CountingReading:
    def __init__(self, inner: Reading, statements: list[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.statements = statements

    def execute(self, statement: str, params: Sequence[Any]) -> Iterable[Sequence[Any]]:
        self.statements.append(statement)
        return self.inner.execute(statement, params)

    def begin(self) -> None:
        self.inner.begin()

    def rollback(self) -> None:
        self.inner.rollback()


@pytest.mark.sqlite_only
def test_placing_a_loss_searches_the_record_key(lossy: PopulatedStore) -> None:
    sql = Sql(SQLITE)
    statement = select_losses(sql, lossy.now_ns - 60 * MINUTE, lossy.now_ns)
    with sqlite3.connect(f"file:{lossy.path}?mode=ro", uri=True) as connection:
        plan = [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + statement, sql.params)]
    connection.close()
    touching = [step for step in plan if " records " in f" {step} "]
    assert touching, plan
    assert all(
        step == "SEARCH records USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"
        for step in touching
    ), plan


def test_entries_stream(lossy_engine: Reader, lossy: PopulatedStore) -> None:
    iterator = entries(lossy_engine, RecordFilter())
    assert next(iterator) == lossy.entries()[0]
    iterator.close()


def test_entries_of_a_database_that_is_not_kextlogs(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    engine = reader(database_url(str(path)))
    for fields in ({}, {"lines": 3}):
        with pytest.raises(DatabaseError, match="not a kextlog database"):
            fetch_entries(engine, **fields)
    with pytest.raises(DatabaseError, match="not a kextlog database"):
        losses(engine)
    engine.dispose()


# --- process, grep, instance, source ----------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("Finder",), {"Finder"}),
        (("finder",), set()),  # exact names are case-sensitive, as process names are
        (("Google Chrome Helper",), {"Google Chrome Helper"}),
        (("mds*",), {"mds_stores"}),
        (("*d",), {"launchd", "syslogd", "santad"}),
        (("s?slogd",), {"syslogd"}),
        (("[lF]*",), {"launchd", "Finder"}),
        (("Finder", "sant*", "launchd"), {"Finder", "santad", "launchd"}),
        (("nothing*",), set()),
    ],
)
def test_processes(
    engine: Reader, populated: PopulatedStore, names: tuple[str, ...], expected: set[str]
) -> None:
    got = fetch(engine, processes=names)
    assert got == populated.select(processes=lambda name: name in expected)
    assert {record.process for record in got} == expected


@pytest.mark.parametrize(
    ("pattern", "flags", "found"),
    [
        ("denied", re.IGNORECASE, True),
        ("DENIED", 0, False),  # an upper-case letter: case-sensitive
        ("Denied", 0, False),
        ("CAFÉ", 0, False),
        ("café ✓", re.IGNORECASE, True),
        (r"#1\d\b", re.IGNORECASE, True),
        (r"\S+\.bak #", re.IGNORECASE, True),  # \S is an escape, not an upper-case letter
        (r"miss for /TMP", 0, False),
        (r"miss for /tmp", re.IGNORECASE, True),
        ("\\.txt\twill retry #\\d+$", re.IGNORECASE, True),
        ("^vnode open .*true #[0-9]+$", re.IGNORECASE, True),
        ("(?i)DENIED", 0, True),  # inline flags still work
    ],
)
def test_grep(
    engine: Reader, populated: PopulatedStore, pattern: str, flags: int, found: bool
) -> None:
    regex = re.compile(pattern, flags)
    got = fetch(engine, grep=pattern)
    assert got == populated.select(messages=lambda message: regex.search(message) is not None)
    assert bool(got) == found


@pytest.mark.parametrize(
    ("pattern", "effective"),
    [
        ("denied", "(?i)denied"),
        ("Denied", "Denied"),
        (r"\Sx\W", r"(?i)\Sx\W"),
        ("\\\\S", "\\\\S"),  # an escaped backslash, then a real upper-case S
        ("é", "(?i)é"),
        ("É", "É"),
        ("", "(?i)"),
    ],
)
def test_grep_is_case_insensitive_without_upper_case(pattern: str, effective: str) -> None:
    assert grep_pattern(pattern) == effective


@pytest.mark.parametrize("pattern", ["a(", "[z-a]", "*x", "(?=x)", r"(x)\1", "x{1001}"])
def test_a_bad_regex_is_a_usage_error_before_reading(pattern: str) -> None:
    with pytest.raises(UsageError, match="--grep: invalid regular expression") as caught:
        RecordFilter(grep=pattern)
    assert "\n" not in str(caught.value)


def test_pids_are_found_in_pid_index_and_after_it(
    engine: Reader, populated: PopulatedStore
) -> None:
    first = populated.instance(1)
    got = fetch(engine, pids=(312,))
    assert got == populated.select(pids={312})
    beyond = [r for r in got if r.instance == first.uuid and r.seq > first.pid_indexed]
    indexed = [r for r in got if r.instance == first.uuid and r.seq <= first.pid_indexed]
    assert beyond and indexed  # both ways of finding them were needed
    since = populated.now_ns - 60 * MINUTE
    assert fetch(engine, pids=(312, 1), since_ns=since) == populated.select(
        pids={312, 1}, since_ns=since
    )


@pytest.mark.parametrize(
    ("spec", "instance_id"),
    [("0", 2), ("-1", 1), (" -1 ", 1), ("f13c513a", 1), ("F13C", 1), ("05", 2)],
)
def test_instance_by_offset_or_prefix(
    engine: Reader, populated: PopulatedStore, spec: str, instance_id: int
) -> None:
    # Both instances were first seen at the same time: the later row is newer.
    assert populated.instance(1).uuid.startswith("f13c513a")
    assert populated.instance(2).uuid.startswith("05")
    got = fetch(engine, instance=spec)
    assert got == populated.select(instances={instance_id})
    assert got


def test_instance_by_full_id_with_or_without_dashes(
    engine: Reader, populated: PopulatedStore
) -> None:
    uuid = populated.instance(1).uuid
    expected = populated.select(instances={1})
    assert fetch(engine, instance=uuid) == expected
    assert fetch(engine, instance=str(UUID(hex=uuid))) == expected  # 8-4-4-4-12


def test_instance_offsets_count_among_the_sources_asked_for(
    engine: Reader, populated: PopulatedStore
) -> None:
    got = fetch(engine, instance="0", sources=("unix:/run/sim-a.sock",))
    assert got == populated.select(instances={1})
    with pytest.raises(UsageError, match="has 1 instance of those sources"):
        fetch(engine, instance="-1", sources=("unix:/run/sim-a.sock",))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("-3", "--instance -3: the store has 3 instances"),
        ("abc", "--instance: no instance 'abc' in this store"),
        ("xyz", "is not an instance id, a prefix of one, 0 (the newest) or -N"),
        ("+1", "is not an instance id"),
        ("f1", "'f1' matches several instances; give more digits"),
    ],
)
def test_instance_errors(populated: PopulatedStore, spec: str, message: str) -> None:
    execute(  # a third instance, also f1...
        populated.url,
        "INSERT INTO instances (id, host, uuid, source, name, boot_id, producer_version,"
        " first_seen_ns, last_seen_ns) VALUES (3, 'h', :uuid, 'unix:/x', 'n', 'b', 'v', -1, 0)",
        uuid="f1" + "0" * 30,
    )
    engine = reader(populated.url)
    try:
        with pytest.raises(UsageError) as caught:
            fetch(engine, instance=spec)
    finally:
        engine.dispose()
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("sources", "instance_ids"),
    [
        (("unix:/run/sim-b.sock",), {2}),
        (("unix:/run/sim-a.sock", "unix:/run/sim-b.sock"), {1, 2}),
        (("unix:/run/other.sock",), set()),
    ],
)
def test_sources(
    engine: Reader, populated: PopulatedStore, sources: tuple[str, ...], instance_ids: set[int]
) -> None:
    assert fetch(engine, sources=sources) == populated.select(instances=instance_ids)


def test_hosts(lossy: PopulatedStore) -> None:
    execute(lossy.url, "UPDATE instances SET host = 'other' WHERE id = 2")
    moved = lossy.instance(2).uuid

    def on_other(entries: list) -> list:
        """The entries with instance 2's records on host other, as they now read."""
        return [
            replace(entry, host="other")
            if isinstance(entry, Record) and entry.instance == moved
            else entry
            for entry in entries
        ]

    engine = reader(lossy.url)
    try:
        assert fetch_entries(engine, hosts=("other",)) == on_other(lossy.entries(instances=[2]))
        assert fetch_entries(engine, hosts=("test-host", "other")) == on_other(lossy.entries())
        assert fetch_entries(engine, hosts=("nowhere",)) == []
        assert fetch(engine, hosts=("other",), instance="0") == on_other(
            lossy.select(instances=[2])
        )
    finally:
        engine.dispose()


def test_follow_shows_what_is_committed_later(populated: PopulatedStore) -> None:
    """--follow with --grep, on each back end (tests/test_follow.py has the rest)."""
    engine = reader(populated.url)
    stop = threading.Event()
    found = follow(
        engine, RecordFilter(since_ns=populated.now_ns + 1, grep="fresh"), poll_seconds=0.05,
        stop=stop,
    )  # fmt: skip
    got: list[Entry] = []
    consumer = threading.Thread(target=lambda: got.extend(found))
    consumer.start()

    def commit(seq: int, message: str) -> None:
        execute(
            populated.url,
            "INSERT INTO records (id, time_ns, mono_ns, level, flags, pid, tid, process, message)"
            " VALUES (:id, :time_ns, 0, 3, 0, 7, 7, 'p', :message)",
            id=schema.record_id(1, seq),
            time_ns=populated.now_ns + seq * NS,
            message=message,
        )

    def seen(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(got) < count:
            assert time.monotonic() < deadline, got
            time.sleep(0.02)

    try:
        commit(181, "FRESH one")  # shown at once, or by the first poll
        seen(1)
        commit(182, "stale")
        commit(183, "fresh two")  # only by a poll
        seen(2)
    finally:
        stop.set()
        consumer.join(timeout=10)
        engine.dispose()
    assert [(entry.seq, entry.message) for entry in got] == [  # type: ignore[union-attr]
        (181, "FRESH one"),
        (183, "fresh two"),
    ]


def test_every_filter_at_once(engine: Reader, populated: PopulatedStore) -> None:
    since = populated.now_ns - 120 * MINUTE
    got = fetch(
        engine,
        levels=(Level.DEBUG, Level.WARNING),
        since_ns=since,
        pids=(312, 777, 501),
        processes=("mds*", "santad"),
        grep="cache|vnode",
        instance="0",  # the newest of sim-a's
        sources=("unix:/run/sim-a.sock",),
    )
    regex = re.compile("cache|vnode", re.IGNORECASE)
    assert got == populated.select(
        levels={Level.DEBUG, Level.INFO, Level.WARNING},
        since_ns=since,
        pids={312, 777},
        processes=lambda name: name in {"mds_stores", "santad"},
        messages=lambda message: regex.search(message) is not None,
        instances={1},
    )
    assert got


def test_losses_follow_instance_and_source_but_not_the_record_filters(
    lossy_engine: Reader, lossy: PopulatedStore
) -> None:
    got = fetch_entries(lossy_engine, instance="-1", grep="DENIED", processes=("x",))
    assert [entry for entry in got if isinstance(entry, Record)] == []
    assert got == [loss for loss in lossy.losses if loss.instance == lossy.instance(1).uuid]
    got = fetch_entries(lossy_engine, sources=("unix:/run/sim-b.sock",), lines=3)
    assert got == lossy.entries(instances={2}, lines=3)


# --- reverse and cursors ------------------------------------------------------


def test_reverse_is_the_same_entries_newest_first(
    lossy_engine: Reader, lossy: PopulatedStore
) -> None:
    forward = fetch_entries(lossy_engine)
    assert fetch_entries(lossy_engine, reverse=True) == forward[::-1] == lossy.entries(reverse=True)
    # Ties: records of one time before the losses of that time, backwards.
    tie = forward.index(lossy.loss(2, 55))
    backward = fetch_entries(lossy_engine, reverse=True)
    at = backward.index(lossy.loss(2, 55))
    assert backward[at - 2 : at + 1] == forward[tie : tie + 3][::-1]


@pytest.mark.parametrize("lines", [0, 1, 3, 50, 1000])
def test_reverse_with_lines_is_the_last_n_newest_first(
    lossy_engine: Reader, lossy: PopulatedStore, lines: int
) -> None:
    got = fetch_entries(lossy_engine, lines=lines, reverse=True)
    assert got == lossy.entries(lines=lines, reverse=True)
    assert got == fetch_entries(lossy_engine, lines=lines)[::-1]


def test_reverse_records(engine: Reader, populated: PopulatedStore) -> None:
    assert fetch(engine, reverse=True) == list(populated.records[::-1])
    assert fetch(engine, reverse=True, lines=4) == list(populated.records[-4:][::-1])


def place(store_: PopulatedStore, record: Record) -> tuple[int, int, int]:
    ids = {instance.uuid: instance.id for instance in store_.instances}
    return (record.time_ns, ids[record.instance], record.seq)


def test_cursor_starts_at_its_record_after_cursor_after_it(
    lossy_engine: Reader, lossy: PopulatedStore
) -> None:
    record = lossy.record(1, 101)  # tied in time with instance 2's seq 61, a loss before
    cursor = Cursor.of(record)
    time_ns, instance_id, seq = place(lossy, record)
    at = fetch_entries(lossy_engine, cursor=cursor)
    assert at[0] == record
    assert at == lossy.entries(after=(time_ns, instance_id, seq - 1))
    after = fetch_entries(lossy_engine, after_cursor=cursor)
    assert after[0] == lossy.record(2, 61)
    assert after == lossy.entries(after=(time_ns, instance_id, seq))
    assert lossy.loss(2, 55) not in at  # placed at the cursor's time, before its record


def test_a_cursor_outlives_its_record(lossy_engine: Reader, lossy: PopulatedStore) -> None:
    _, made = make_records(lossy.now_ns)
    pruned = next(r for r in made if r.instance == lossy.instance(1).uuid and r.seq == 5)
    assert pruned not in lossy.records
    got = fetch_entries(lossy_engine, after_cursor=Cursor.of(pruned))
    assert got == lossy.entries(after=place(lossy, pruned))
    assert got[0].time_ns >= pruned.time_ns


def test_cursors_combine_with_filters_lines_and_reverse(
    lossy_engine: Reader, lossy: PopulatedStore
) -> None:
    start = lossy.records[100]
    fields = {"after_cursor": Cursor.of(start), "levels": (Level.ERROR, Level.ERROR)}
    expected = lossy.entries(after=place(lossy, start), levels={Level.ERROR})
    assert fetch_entries(lossy_engine, **fields) == expected
    assert fetch_entries(lossy_engine, lines=2, reverse=True, **fields) == lossy.entries(
        after=place(lossy, start), levels={Level.ERROR}, lines=2, reverse=True
    )


def test_a_cursor_of_another_store_is_refused(engine: Reader) -> None:
    with pytest.raises(UsageError, match=r"--after-cursor: instance (1234)+ is not in this store"):
        fetch(engine, after_cursor=Cursor("1234" * 8, 1, 0))


def test_cursor_and_after_cursor_exclude_each_other() -> None:
    cursor = Cursor("ab" * 16, 1, 0)
    with pytest.raises(UsageError, match="not both"):
        RecordFilter(cursor=cursor, after_cursor=cursor)


@pytest.mark.parametrize(
    "text",
    [
        "i=0690a5df1c2e4b7a9d3f0a1b2c3d4e5f,s=5001,t=1795774956123456789",
        " I=0690A5DF1C2E4B7A9D3F0A1B2C3D4E5F,S=5001,T=1795774956123456789 ",
        "i=0690a5df1c2e4b7a9d3f0a1b2c3d4e5f,s=1,t=-5",
    ],
)
def test_cursor_text_round_trip(text: str) -> None:
    cursor = Cursor.parse(text)
    assert Cursor.parse(str(cursor)) == cursor
    assert str(cursor) == text.strip().lower()


@pytest.mark.parametrize(
    "text", ["", "abc", "i=0690a5df,s=1,t=2", "s=1,i=" + "0" * 32 + ",t=2", "i=" + "0" * 32]
)
def test_a_bad_cursor_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid cursor"):
        Cursor.parse(text)


def test_cursor_keeper_keeps_the_newest_record(lossy: PopulatedStore) -> None:
    entries_ = lossy.entries(lines=5)
    kept = CursorKeeper(entries_)
    assert list(kept) == entries_
    assert kept.cursor == Cursor.of(lossy.records[-1])  # not the losses after it
    backwards = CursorKeeper(entries_[::-1], newest_first=True)
    assert list(backwards) == entries_[::-1]
    assert backwards.cursor == Cursor.of(lossy.records[-1])
    assert CursorKeeper([]).cursor is None

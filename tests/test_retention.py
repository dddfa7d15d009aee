"""Retention: prune by age per level and to a size, the losses rule, space
given back, and a writer that keeps committing meanwhile."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from kextlog_store.errors import UsageError
from kextlog_store.levels import Level
from kextlog_store.records import Record
from kextlog_store.stats import collect
from kextlog_store.store import schema
from kextlog_store.store.check import check
from kextlog_store.store.engine import read_engine, sqlite_path, write_engine
from kextlog_store.store.location import database_url
from kextlog_store.store.retention import PruneResult, RetentionPolicy, apply, parse_size
from tests.conftest import NS, Kextlog, PopulatedStore, wait_until

MINUTE, HOUR, DAY = 60 * NS, 3600 * NS, 86400 * NS
BOTH_BACKENDS = True


@pytest.fixture
def engine(db_url: str, empty_store: Path) -> Iterator[Engine]:
    engine = write_engine(db_url)
    yield engine
    engine.dispose()


def rows(path: Path | str, sql: str) -> list[tuple]:
    """The rows of sql in a SQLite file, or in the store at a URL."""
    engine = read_engine(path if isinstance(path, str) else database_url(str(path)))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def stored(path: Path | str) -> set[tuple[int, int]]:
    return set(rows(path, "SELECT instance_id, seq FROM records"))


def key(populated: PopulatedStore, record: Record) -> tuple[int, int]:
    return next(i.id for i in populated.instances if i.uuid == record.instance), record.seq


def loss_keys(path: Path | str) -> set[tuple[int, int]]:
    return set(rows(path, "SELECT instance_id, first_seq FROM losses"))


def check_pid_index(path: Path | str) -> None:
    """pid_index holds exactly the records up to each instance's pid_indexed_seq."""
    indexed = set(rows(path, "SELECT pid, time_ns, id FROM pid_index"))
    expected = set(
        rows(
            path,
            "SELECT r.pid, r.time_ns, r.id FROM records r JOIN instances i"
            " ON i.id = r.instance_id WHERE r.seq <= i.pid_indexed_seq",
        )
    )
    assert indexed == expected


def check_accounting(
    url: str, pruned_records: Mapping[int, int], pruned_lost: Mapping[int, int]
) -> None:
    """Each instance's pruned counts are what the test knows was removed,
    and the accounting adds up (stats and, on SQLite, `kextlog db check`)."""
    counts = rows(url, "SELECT id, pruned_records, pruned_lost FROM instances ORDER BY id")
    assert counts == [
        (instance_id, pruned_records.get(instance_id, 0), pruned_lost.get(instance_id, 0))
        for instance_id, _, _ in counts
    ]
    assert [account.discrepancy for account in collect(url).instances] == [0] * len(counts)
    if sqlite_path(url) is not None:
        assert check(url, quick=True).failed == ()


def check_lossy(lossy: PopulatedStore) -> None:
    """check_accounting for the lossy store: what is gone of its records and
    loss rows, by the fixture's own lists (instance 1's seqs 4..6 were
    pruned before)."""
    left, losses = stored(lossy.url), loss_keys(lossy.url)
    ids = {instance.uuid: instance.id for instance in lossy.instances}
    records = Counter({1: 3})
    records.update(ids[r.instance] for r in lossy.records if (ids[r.instance], r.seq) not in left)
    lost: Counter[int] = Counter()
    for loss in lossy.losses:
        if (ids[loss.instance], loss.first_seq) not in losses:
            lost[ids[loss.instance]] += loss.count
    check_accounting(lossy.url, records, lost)


# --- sizes and policies --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("123", 123),
        ("100K", 100 << 10),
        ("10 kb", 10 << 10),
        ("500MB", 500 << 20),
        ("2GB", 2 << 30),
        ("2g", 2 << 30),
        ("1.5GiB", 3 << 29),
        ("1T", 1 << 40),
        ("7B", 7),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GB", "-1", "1.2.3", "5XB", "1e3", "2 G B"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(UsageError, match=r"^invalid size"):
        parse_size(text)


def test_a_policy_from_text() -> None:
    policy = RetentionPolicy.parse("trace..debug=1d, info=30d,warning..error=1w", "2GB")
    assert policy.max_age_ns == {
        Level.TRACE: DAY,
        Level.DEBUG: DAY,
        Level.INFO: 30 * DAY,
        Level.WARNING: 7 * DAY,
        Level.ERROR: 7 * DAY,
    }
    assert policy.max_size_bytes == 2 << 30
    # A level on its own is that level alone; others are kept for ever.
    assert RetentionPolicy.parse("info=30d").max_age_ns == {Level.INFO: 30 * DAY}
    assert RetentionPolicy.parse("", "1M") == RetentionPolicy({}, 1 << 20)


@pytest.mark.parametrize(
    ("ages", "message"),
    [
        ("info", "expected LEVEL=AGE"),
        ("info=30d,debug..info=1d", "info is given twice"),
        ("bogus=1d", "unknown level 'bogus'"),
        ("info=soon", "invalid duration 'soon'"),
        ("info=-1d", "invalid duration"),
    ],
)
def test_bad_policies(ages: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        RetentionPolicy.parse(ages)


def test_older_than() -> None:
    assert RetentionPolicy.older_than(HOUR).max_age_ns == dict.fromkeys(Level, HOUR)
    policy = RetentionPolicy.older_than(HOUR, (Level.TRACE, Level.DEBUG), 5)
    assert policy == RetentionPolicy({Level.TRACE: HOUR, Level.DEBUG: HOUR}, 5)
    assert RetentionPolicy.older_than(None, None, 5) == RetentionPolicy({}, 5)
    with pytest.raises(UsageError):
        RetentionPolicy({}, 0)


# --- by age -------------------------------------------------------------------------


def prune(populated: PopulatedStore, policy: RetentionPolicy) -> PruneResult:
    engine = write_engine(populated.url)
    try:
        return apply(engine, policy, now_ns=populated.now_ns)
    finally:
        engine.dispose()


def test_every_level_older_than_an_hour(lossy: PopulatedStore) -> None:
    high_water = rows(lossy.url, "SELECT id, high_water, filtered FROM instances ORDER BY id")
    cut = lossy.now_ns - HOUR
    result = prune(lossy, RetentionPolicy(dict.fromkeys(Level, HOUR), None, batch_rows=7))
    kept = lossy.select(since_ns=cut)
    gone = [r for r in lossy.records if r.time_ns < cut]
    assert stored(lossy.url) == {key(lossy, r) for r in kept}
    assert result.removed == len(gone)
    assert result.records == {
        level: n for level in Level if (n := sum(r.level == level for r in gone))
    }
    # Losses older than the cut with no stored record of their instance
    # before them: 24..25 and 50..52.  1..3 and 55..60 have no time of their
    # own: they count from when ingest recorded them, a second ago.
    assert result.losses == 2
    assert loss_keys(lossy.url) == {(1, 1), (2, 55), (1, 150), (2, 110), (1, 181), (2, 121)}
    assert rows(lossy.url, "SELECT id, high_water, filtered FROM instances ORDER BY id") == (
        high_water
    )
    check_pid_index(lossy.url)
    # Counted as removed: 24..25 (2 seqs) of instance 2, 50..52 (3) of instance 1.
    check_lossy(lossy)
    check_accounting(
        lossy.url,
        {i.id: (3 if i.id == 1 else 0) + sum(key(lossy, r)[0] == i.id for r in gone)
         for i in lossy.instances},
        {1: 3, 2: 2},
    )  # fmt: skip


def test_only_the_noisy_levels(lossy: PopulatedStore) -> None:
    cut = lossy.now_ns - 30 * MINUTE
    before = loss_keys(lossy.url)
    result = prune(lossy, RetentionPolicy.older_than(30 * MINUTE, (Level.TRACE, Level.DEBUG)))
    kept = [r for r in lossy.records if r.time_ns >= cut or r.level > Level.DEBUG]
    assert stored(lossy.url) == {key(lossy, r) for r in kept}
    assert set(result.records) == {Level.TRACE, Level.DEBUG}
    assert result.losses == 0 and loss_keys(lossy.url) == before  # other levels are kept
    check_pid_index(lossy.url)
    check_lossy(lossy)


def test_an_age_per_level(lossy: PopulatedStore) -> None:
    ages = {Level.TRACE: 10 * MINUTE, Level.DEBUG: 30 * MINUTE, Level.INFO: HOUR}
    ages |= {Level.WARNING: 2 * HOUR, Level.ERROR: 150 * MINUTE}
    result = prune(lossy, RetentionPolicy(ages))
    kept = [r for r in lossy.records if r.time_ns >= lossy.now_ns - ages[r.level]]
    assert stored(lossy.url) == {key(lossy, r) for r in kept}
    assert result.removed == len(lossy.records) - len(kept)
    # Losses go only past the longest age: before 150 minutes ago, 24..25 (140 m).
    assert result.losses == 0 and len(loss_keys(lossy.url)) == len(lossy.losses)
    check_lossy(lossy)


def test_a_loss_among_kept_records_stays(lossy: PopulatedStore) -> None:
    # Instance 1's seq 7 has a wrong clock: it is kept, and the losses after
    # it stay with it although they are older than the cut.
    engine = write_engine(lossy.url)
    with engine.begin() as connection:
        connection.execute(
            update(schema.records)
            .where(schema.records.c.id == schema.record_id(1, 7))
            .values(time_ns=lossy.now_ns)
        )
    engine.dispose()
    result = prune(lossy, RetentionPolicy.older_than(HOUR))
    assert (1, 7) in stored(lossy.url)
    assert result.losses == 1  # only instance 2's 24..25
    assert (1, 50) in loss_keys(lossy.url) and (2, 24) not in loss_keys(lossy.url)


def test_a_stop_ends_between_transactions(lossy: PopulatedStore) -> None:
    stop = threading.Event()
    stop.set()
    engine = write_engine(lossy.url)
    result = apply(engine, RetentionPolicy(dict.fromkeys(Level, 0), None, 5), stop=stop)
    engine.dispose()
    assert result.stopped and result.removed == 0
    assert len(stored(lossy.url)) == len(lossy.records)


# --- to a size ----------------------------------------------------------------------


def fill(path: Path, count: int, *, start_seq: int = 1, instance_id: int = 1) -> None:
    """count records of about 200 bytes, a millisecond apart, as ingest stores them."""
    rng = random.Random(start_seq)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA busy_timeout = 10000")
    with connection:
        connection.execute(
            "INSERT OR IGNORE INTO instances (id, host, uuid, source, name, boot_id,"
            " producer_version, first_seen_ns, last_seen_ns) VALUES (?, 'h', ?, 'unix:/x', 'n',"
            " 'b', 'v', 0, 0)",
            (instance_id, f"{instance_id:032x}"),
        )
        base = 1_700_000_000 * NS
        records = [
            (
                schema.record_id(instance_id, seq),
                base + seq * 1_000_000,
                rng.randint(1, 5),
                rng.choice((1, 88, 312)),
                "x" * rng.randint(100, 200) + f" #{seq}",
            )
            for seq in range(start_seq, start_seq + count)
        ]
        connection.executemany(
            "INSERT INTO records (id, time_ns, mono_ns, level, flags, pid, tid, process, message)"
            " VALUES (?, ?, 0, ?, 0, ?, 1, 'p', ?)",
            records,
        )
        last = start_seq + count - 1
        connection.execute(
            "UPDATE instances SET high_water = ?, pid_indexed_seq = ? WHERE id = ?",
            (last, last, instance_id),
        )
        connection.execute(
            "INSERT INTO pid_index SELECT pid, time_ns, id FROM records WHERE id >= ?"
            " ORDER BY pid, time_ns, id",
            (schema.record_id(instance_id, start_seq),),
        )
        connection.execute(
            f"INSERT INTO record_counts SELECT {schema.minute_sql('time_ns')}, level, ?, count(*)"
            " FROM records WHERE id >= ? AND id <= ? GROUP BY 1, 2 ON CONFLICT"
            " DO UPDATE SET count = record_counts.count + excluded.count",
            (
                instance_id,
                schema.record_id(instance_id, start_seq),
                schema.record_id(instance_id, last),
            ),
        )
        connection.execute(
            "INSERT INTO pid_counts SELECT pid, process, ?, count(*) FROM records"
            " WHERE id >= ? AND id <= ? GROUP BY 1, 2 ON CONFLICT"
            " DO UPDATE SET count = pid_counts.count + excluded.count",
            (
                instance_id,
                schema.record_id(instance_id, start_seq),
                schema.record_id(instance_id, last),
            ),
        )
    connection.close()


def in_use(path: Path) -> int:
    ((size, count, free),) = rows(
        path,
        "SELECT p.page_size, c.page_count, f.freelist_count FROM pragma_page_size p,"
        " pragma_page_count c, pragma_freelist_count f",
    )
    return size * (count - free)


def test_a_size_cap_removes_the_oldest_and_gives_the_space_back(
    engine: Engine, empty_store: Path, db_url: str
) -> None:
    fill(empty_store, 20_000)
    before = os.path.getsize(empty_store)  # the last connection checkpointed it
    cap = in_use(empty_store) // 3
    result = apply(engine, RetentionPolicy({}, cap, 2_000))
    assert result.fits and result.size_after is not None and result.size_after <= cap
    assert result.file_after == result.size_after  # every free page went back
    left = sorted(seq for _, seq in stored(empty_store))
    assert left == list(range(20_001 - len(left), 20_001))  # the newest, all of them
    assert 20_000 / 4 < len(left) < 20_000 / 2
    assert os.path.getsize(empty_store) <= cap  # after the checkpoint, the file itself
    assert before > 2 * cap
    check_pid_index(empty_store)
    check_accounting(db_url, {1: 20_000 - len(left)}, {})


def test_a_cap_nothing_can_meet(engine: Engine, empty_store: Path) -> None:
    fill(empty_store, 500)
    result = apply(engine, RetentionPolicy({}, 1))
    assert result.fits is False and result.removed == 500
    assert stored(empty_store) == set()


def test_a_size_cap_already_met_removes_nothing(engine: Engine, empty_store: Path) -> None:
    fill(empty_store, 500)
    result = apply(engine, RetentionPolicy({}, 1 << 30))
    assert (result.fits, result.removed, result.losses) == (True, 0, 0)


def test_freed_pages_are_reused_and_the_file_stops_growing(
    engine: Engine, empty_store: Path
) -> None:
    cap = 1 << 20
    sizes = []
    for round_ in range(6):  # 5,000 records a round, about 1.5 MB
        fill(empty_store, 5_000, start_seq=1 + round_ * 5_000)
        result = apply(engine, RetentionPolicy({}, cap))
        assert result.fits
        sizes.append(os.path.getsize(empty_store))
    assert max(sizes) <= cap
    assert len(stored(empty_store)) < 5_000  # most of the 30,000 are gone


# --- while a writer commits ------------------------------------------------------------


def test_pruning_while_a_writer_commits(engine: Engine, empty_store: Path, db_url: str) -> None:
    fill(empty_store, 20_000)
    cap = in_use(empty_store) // 4
    stop = threading.Event()
    seen: list[int] = []  # instance 1's pruned_records, as the writer saw it after each commit
    errors: list[BaseException] = []

    def write() -> None:  # as ingest: a batch every few milliseconds
        seq = 20_001
        try:
            while not stop.is_set():
                fill(empty_store, 200, start_seq=seq)
                seen.append(rows(empty_store, "SELECT pruned_records FROM instances")[0][0])
                seq += 200
                time.sleep(0.005)
        except BaseException as exc:  # a "database is locked" would end up here
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait_until(lambda: seen or errors, "the writer's first commit")
        result = apply(engine, RetentionPolicy({}, cap, 1_000))
        # One more commit: the writer is not stuck behind the last transaction.
        after = len(seen)
        wait_until(lambda: len(seen) > after or errors, "a commit after the prune")
    finally:
        stop.set()
        writer.join(timeout=60)
    assert errors == []
    assert result.removed > 10_000
    # Prune removed 1,000 records a transaction; the writer committed in
    # between: it saw the count grow in steps, never held off for long.
    # (Counted in commits, not seconds: the machine may be loaded.)
    steps = sorted(set(seen) - {0, result.removed})
    assert len(steps) >= result.removed // 1_000 // 4, (len(steps), result.removed)
    check_pid_index(empty_store)
    check_accounting(db_url, {1: result.removed}, {})


# --- the command ----------------------------------------------------------------------


def test_prune_command(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    result = kextlog("prune", "--older-than", "1h", "--level", "trace..debug")
    assert result.returncode == 0, result.stderr
    cut = lossy.now_ns - HOUR
    gone = [r for r in lossy.records if r.time_ns < cut and r.level <= Level.DEBUG]
    counts = {level: sum(r.level == level for r in gone) for level in (Level.TRACE, Level.DEBUG)}
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"removed {len(gone)} records (trace {counts[Level.TRACE]}, debug {counts[Level.DEBUG]})"
        " and 0 loss rows"
    )
    assert lines[1].startswith("in use ") and " -> " in lines[1] and ", file " in lines[1]
    assert len(lines) == 2 and result.stderr == ""
    kept = {key(lossy, r) for r in lossy.records if r not in gone}
    assert stored(lossy.url) == kept


@pytest.mark.sqlite_only
def test_prune_to_a_size_that_cannot_be_met(kextlog: Kextlog, lossy: PopulatedStore) -> None:
    result = kextlog("prune", "--max-size", "1K")
    assert result.returncode == 1
    assert result.stdout.startswith(f"removed {len(lossy.records)} records (")
    assert result.stderr.startswith("kextlog: error: ")
    assert result.stderr.endswith(
        " still in use, more than --max-size 1.0 KiB: no older record is left to remove\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to prune: give --older-than, --max-size or both"),
        (
            ["--level", "trace"],
            "--level says which records --older-than removes: give --older-than",
        ),
        (
            ["--older-than", "yesterday"],
            "--older-than: invalid duration 'yesterday': expected e.g. 30s, 15m, 1h30m, 2d, 1w",
        ),
        (["--max-size", "lots"], "--max-size: invalid size 'lots': expected e.g. 2GB, 500MB, 100K"),
        (
            ["--older-than", "1d", "--level", "loud"],
            "--level: unknown level 'loud' (expected one of trace, debug, info, warning, error,"
            " or a syslog priority 0..7)",
        ),
    ],
)
def test_prune_usage_errors(
    kextlog: Kextlog, populated: PopulatedStore, args: list[str], message: str
) -> None:
    result = kextlog("prune", *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"kextlog: error: {message}\n"


@pytest.mark.sqlite_only
def test_prune_never_creates_a_database(kextlog: Kextlog, db_path: Path) -> None:
    result = kextlog("prune", "--older-than", "1d")
    assert result.returncode == 1
    assert result.stderr.startswith("kextlog: error: no kextlog database at ")
    assert not db_path.exists()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_size_cap_is_refused_on_postgresql(kextlog: Kextlog, populated: PopulatedStore) -> None:
    result = kextlog("prune", "--max-size", "1G")
    assert result.returncode == 2
    assert result.stderr.startswith("kextlog: error: --max-size measures a SQLite store's")
    assert len(stored(populated.url)) == len(populated.records)


def test_without_incremental_vacuum_the_freed_pages_are_reused(
    engine: Engine, empty_store: Path
) -> None:
    with sqlite3.connect(empty_store, isolation_level=None) as connection:
        connection.execute("PRAGMA auto_vacuum = NONE")
        connection.execute("VACUUM")  # how an older store would be
    connection.close()
    fill(empty_store, 10_000)
    cap = in_use(empty_store) // 4
    result = apply(engine, RetentionPolicy({}, cap))
    assert result.fits and result.file_after == result.file_before  # nothing given back
    ((pages, free),) = rows(
        empty_store, "SELECT c.page_count, f.freelist_count FROM pragma_page_count c,"
        " pragma_freelist_count f",
    )  # fmt: skip
    assert free > pages / 2
    fill(empty_store, 5_000, start_seq=10_001)  # fits in the free pages: the file does not grow
    assert rows(empty_store, "SELECT page_count FROM pragma_page_count") == [(pages,)]

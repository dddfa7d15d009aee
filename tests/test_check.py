"""A damaged store, or one from a newer kextlog: every command refuses it at
start with one line that names the file and what to do, and none changes it;
`kextlog db check` reports what is wrong."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kextlog_store.store import check, migrate, schema
from kextlog_store.wire import SEQ_MAX
from tests.conftest import PopulatedStore
from tests.processes import COMMAND, environment, kextlog

SIDE_FILES = ("", "-wal", "-shm")


def fingerprint(db: Path) -> dict[str, str]:
    """The database file and its side files that exist, by content."""
    files = (db.with_name(db.name + side) for side in SIDE_FILES)
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files if path.exists()
    }


def assert_unchanged(db: Path, before: dict[str, str]) -> None:
    """The files that were there are as they were; no -wal with content came
    (a reader may add the -shm, SQLite's index of the -wal, which holds no
    data)."""
    after = fingerprint(db)
    assert {name: after.get(name) for name in before} == before
    wal = db.with_name(db.name + "-wal")
    assert wal.name in before or not wal.exists() or wal.stat().st_size == 0


def page_of(db: Path, table: str) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()[0]


def overwrite(db: Path, offset: int, size: int) -> None:
    noise = random.Random(20261127).randbytes(size)
    with db.open("r+b") as file:
        file.seek(offset)
        file.write(noise)


def not_sqlite(db: Path) -> None:
    db.write_text("these are notes, not a database\n" * 200)


def garbage_header(db: Path) -> None:
    overwrite(db, 0, 100)


def truncated(db: Path) -> None:
    with db.open("r+b") as file:
        file.truncate(db.stat().st_size // 2)


def damaged_records(db: Path) -> None:
    """Noise over the records table's root page: the header and the schema
    are whole, every read of a record fails."""
    overwrite(db, (page_of(db, "records") - 1) * 4096, 4096)


def in_wal(db: Path, sql: str) -> None:
    """Commits sql into the -wal file only, as a writer that crashed before
    a checkpoint leaves it."""
    saved = db.with_name("saved")
    saved.mkdir()
    connection = sqlite3.connect(db)
    connection.execute(sql)
    connection.commit()
    for side in ("", "-wal"):
        shutil.copyfile(db.with_name(db.name + side), saved / (db.name + side))
    connection.close()  # the last connection checkpoints: put back what it left
    for side in ("", "-wal"):
        shutil.copyfile(saved / (db.name + side), db.with_name(db.name + side))
    assert db.with_name(db.name + "-wal").stat().st_size > 0


def newer_in_wal(db: Path) -> None:
    """A newer kextlog's store, its last commit still in the -wal file."""
    in_wal(db, "UPDATE alembic_version SET version_num = '9999'")


# Found at start, before anything opens the file for real.
AT_START: dict[str, Callable[[Path], None]] = {
    "not-sqlite": not_sqlite,
    "garbage-header": garbage_header,
    "truncated": truncated,
    "newer-in-wal": newer_in_wal,
}

READERS = {
    "query": ["query", "--no-pager"],
    "follow": ["query", "--follow"],
    "sql": ["sql", "SELECT count(*) FROM log"],
    "stats": ["stats"],
}
WRITERS = {
    "prune": ["prune", "--older-than", "1d"],
    "db upgrade": ["db", "upgrade"],
    "ingest": ["ingest", "--source", "unix:/nonexistent/sim.sock"],
}


def run(db: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    # A command that does not refuse the file would run on (ingest, follow):
    # the timeout fails the test.
    return subprocess.run(
        [*COMMAND, *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        env=environment(),
    )


def assert_refused(result: subprocess.CompletedProcess[str], db: Path, words: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert result.stderr.startswith(f"kextlog: error: {db} ")
    assert words in result.stderr


@pytest.mark.parametrize("command", [*READERS, *WRITERS])
@pytest.mark.parametrize("damage", AT_START)
def test_every_command_refuses_a_bad_store_at_start_and_leaves_it(
    populated: PopulatedStore, damage: str, command: str
) -> None:
    db = populated.path
    AT_START[damage](db)
    before = fingerprint(db)
    result = run(db, {**READERS, **WRITERS}[command])
    if damage == "newer-in-wal":
        assert_refused(result, db, "newer than this kextlog knows")
    else:
        assert_refused(result, db, "move it aside; `kextlog db check` tells more")
    assert_unchanged(db, before)


@pytest.mark.parametrize("command", READERS)
def test_a_damaged_page_is_reported_when_read_and_left(
    populated: PopulatedStore, command: str
) -> None:
    db = populated.path
    damaged_records(db)
    before = fingerprint(db)
    assert_refused(run(db, READERS[command]), db, "malformed")
    assert_unchanged(db, before)


def test_a_healthy_store_passes(populated: PopulatedStore) -> None:
    before = fingerprint(populated.path)
    result = kextlog("db", "check", "--db", str(populated.path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"{populated.path}:"
    assert [line.split()[0] for line in lines[1:]] == ["ok"] * 7
    assert "(2 instances)" in result.stdout
    report = check.check(populated.url, quick=True)
    assert report.failed == () and report.findings[0].check == "quick_check"
    assert_unchanged(populated.path, before)


def test_check_finds_damaged_pages(populated: PopulatedStore) -> None:
    damaged_records(populated.path)
    before = fingerprint(populated.path)
    result = kextlog("db", "check", "--db", str(populated.path))
    assert result.returncode == 1
    assert "FAIL  integrity_check" in result.stdout
    # The high-water, accounting and counter checks read the records too:
    # they fail with the page.
    assert result.stderr == (
        f"kextlog: error: {populated.path}: 4 of 7 checks failed "
        "(integrity_check, high-water marks, accounting, counters)\n"
    )
    assert "          database disk image is malformed\n" in result.stdout
    assert_unchanged(populated.path, before)


@pytest.mark.parametrize("damage", ["not-sqlite", "garbage-header"])
def test_check_of_a_file_that_is_no_database(populated: PopulatedStore, damage: str) -> None:
    AT_START[damage](populated.path)
    report = check.check(populated.url)
    assert [finding.check for finding in report.failed] == [
        "integrity_check",
        "foreign_key_check",
        "schema revision",
    ]
    assert report.failed[0].problems == ("file is not a database",)
    assert all(finding.skipped for finding in report.findings[3:])


def test_check_finds_broken_accounting(lossy: PopulatedStore) -> None:
    with sqlite3.connect(lossy.path) as connection:
        # Instance 1 holds seqs up to 180: a high-water mark below that.
        connection.execute("UPDATE instances SET high_water = 170 WHERE id = 1")
        # Instance 2: a loss over stored records, and one over another loss.
        connection.execute(
            "INSERT INTO losses (instance_id, first_seq, last_seq, count, reason, recorded_ns)"
            " VALUES (2, 30, 31, 2, 'gap', 0), (2, 111, 113, 3, 'gap', 0)"
        )
    report = check.check(lossy.url)
    failed = {finding.check: finding.problems for finding in report.failed}
    uuid1, uuid2 = (instance.uuid for instance in lossy.instances)
    assert failed["high-water marks"] == (
        f"instance {uuid1}: a record with seq 180 above its high-water mark 170",
    )
    assert set(failed["losses"]) == {
        f"instance {uuid1}: loss of seqs 181..181 is above its high-water mark 170",
        f"instance {uuid2}: loss of seqs 30..31 overlaps stored records",
        f"instance {uuid2}: loss of seqs 111..113 overlaps stored records",
        f"instance {uuid2}: loss of seqs 111..113 overlaps the loss before it",
    }
    # The seqs 171..180 above the mark are not counted; the losses are, twice.
    assert failed["accounting"] == (
        f"instance {uuid1}: 170 seqs (1..170), but stored 159 + lost 9 + filtered 0"
        " + pruned 3 = 171 (1 counted twice)",
        f"instance {uuid2}: 125 seqs (1..125), but stored 110 + lost 20 + filtered 0"
        " + pruned 0 = 130 (5 counted twice)",
    )
    assert set(failed) == {"high-water marks", "losses", "accounting"}


def test_check_finds_rows_that_went_without_prune(lossy: PopulatedStore) -> None:
    """A record and a loss row deleted behind kextlog's back are not pruned
    records: the counts no longer add up, and check says by how much."""
    result = kextlog("db", "check", "--db", str(lossy.path))
    assert result.returncode == 0 and "ok    accounting (2 instances)" in result.stdout
    with sqlite3.connect(lossy.path) as connection:
        connection.execute("DELETE FROM records WHERE instance_id = 1 AND seq = 100")
        connection.execute("DELETE FROM losses WHERE instance_id = 2 AND first_seq = 55")
    result = kextlog("db", "check", "--db", str(lossy.path))
    assert result.returncode == 1
    assert result.stderr == (
        f"kextlog: error: {lossy.path}: 2 of 7 checks failed (accounting, counters)\n"
    )
    uuid1, uuid2 = (instance.uuid for instance in lossy.instances)
    # Instance 1: seq 100 is gone; instance 2: 6 lost seqs (55..60) with their row.
    lines = result.stdout.splitlines()
    assert lines[-6:-3] == [
        "  FAIL  accounting (2 instances)",
        f"          instance {uuid1}: 181 seqs (1..181), but stored 168 + lost 9 + filtered 0"
        " + pruned 3 = 180 (1 not accounted for)",
        f"          instance {uuid2}: 125 seqs (1..125), but stored 110 + lost 9 + filtered 0"
        " + pruned 0 = 119 (6 not accounted for)",
    ]
    # The record's bucket holds one record fewer than its counter says.
    gone = lossy.record(1, 100)
    minute = gone.time_ns // schema.NS_PER_MINUTE
    bucket = [
        r for r in lossy.records
        if (r.instance, r.level, r.time_ns // schema.NS_PER_MINUTE)
        == (uuid1, gone.level, minute)
    ]  # fmt: skip
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(minute * 60))
    # ... and its pid's, under the record's process.
    same_pid = [
        r for r in lossy.records
        if (r.instance, r.pid, r.process) == (uuid1, gone.pid, gone.process)
    ]  # fmt: skip
    assert lines[-3:] == [
        f"  FAIL  counters ({lines[-3].split('(')[1]}",
        f"          instance {uuid1}, level {int(gone.level)}, minute {when}:"
        f" counted {len(bucket)}, stored {len(bucket) - 1}",
        f"          instance {uuid1}, pid {gone.pid} ({gone.process}):"
        f" counted {len(same_pid)}, stored {len(same_pid) - 1}",
    ]


def test_check_finds_counters_that_disagree_with_the_records(populated: PopulatedStore) -> None:
    """In each table of counters, a counter changed, one deleted, and one
    for a bucket with no records: each bucket is reported with both
    figures."""
    with sqlite3.connect(populated.path) as connection:
        (minute, level, instance, count), (minute2, level2, instance2, count2) = connection.execute(
            "SELECT minute, level, instance_id, count FROM record_counts"
            " ORDER BY minute, level, instance_id LIMIT 2"
        ).fetchall()
        connection.execute(
            "UPDATE record_counts SET count = count + 5 WHERE minute = ? AND level = ?"
            " AND instance_id = ?",
            (minute, level, instance),
        )
        connection.execute(
            "DELETE FROM record_counts WHERE minute = ? AND level = ? AND instance_id = ?",
            (minute2, level2, instance2),
        )
        connection.execute("INSERT INTO record_counts VALUES (7, 3, 1, 2)")
        (pid, process, instance3, count3), (pid2, process2, instance4, count4) = connection.execute(
            "SELECT pid, process, instance_id, count FROM pid_counts"
            " ORDER BY pid, process, instance_id LIMIT 2"
        ).fetchall()
        connection.execute(
            "UPDATE pid_counts SET count = count - 1 WHERE pid = ? AND process = ?"
            " AND instance_id = ?",
            (pid, process, instance3),
        )
        connection.execute(
            "DELETE FROM pid_counts WHERE pid = ? AND process = ? AND instance_id = ?",
            (pid2, process2, instance4),
        )
        connection.execute("INSERT INTO pid_counts VALUES (99999, 'ghost', 1, 4)")
    report = check.check(populated.url)
    failed = {finding.check: finding.problems for finding in report.failed}
    uuids = {instance.id: instance.uuid for instance in populated.instances}

    def when(minute: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(minute * 60))

    assert failed == {
        "counters": (
            f"instance {uuids[1]}, level 3, minute 1970-01-01 00:07 UTC: counted 2, stored 0",
            f"instance {uuids[instance]}, level {level}, minute {when(minute)}:"
            f" counted {count + 5}, stored {count}",
            f"instance {uuids[instance2]}, level {level2}, minute {when(minute2)}:"
            f" counted 0, stored {count2}",
            f"instance {uuids[instance3]}, pid {pid} ({process}):"
            f" counted {count3 - 1}, stored {count3}",
            f"instance {uuids[instance4]}, pid {pid2} ({process2}): counted 0, stored {count4}",
            f"instance {uuids[1]}, pid 99999 (ghost): counted 4, stored 0",
        )
    }


def test_check_of_a_store_before_pid_counts(populated: PopulatedStore) -> None:
    migrate.downgrade(populated.url, "0008")
    report = check.check(populated.url)
    assert report.failed == ()
    (counters,) = [finding for finding in report.findings if finding.check == "counters"]
    assert counters.note.endswith(" minute buckets") and not counters.skipped


def test_check_of_a_store_before_pruned_counts(populated: PopulatedStore) -> None:
    migrate.downgrade(populated.url, "0005")
    report = check.check(populated.url)
    assert report.failed == ()
    (accounting,) = [finding for finding in report.findings if finding.check == "accounting"]
    assert accounting.skipped and "`kextlog db upgrade`" in accounting.note


def test_check_finds_a_high_water_mark_past_the_seq_bound(lossy: PopulatedStore) -> None:
    # A mark past SEQ_MAX covers other instances' keys (an older kextlog let one in).
    past = SEQ_MAX + 1
    with sqlite3.connect(lossy.path) as connection:
        connection.execute("UPDATE instances SET high_water = ? WHERE id = 1", (past,))
    report = check.check(lossy.url)
    failed = {finding.check: finding.problems for finding in report.failed}
    uuid1 = lossy.instances[0].uuid
    assert failed["high-water marks"] == (
        f"instance {uuid1}: high-water mark {past} past seq {SEQ_MAX}",
    )


def test_check_of_a_newer_schema(populated: PopulatedStore) -> None:
    with sqlite3.connect(populated.path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    report = check.check(populated.url)
    assert [(finding.check, finding.problems) for finding in report.failed] == [
        ("schema revision", ("9999 is newer than this kextlog knows",))
    ]
    assert [finding.skipped for finding in report.findings] == [False] * 3 + [True] * 4


def test_check_never_creates_a_store(tmp_path: Path) -> None:
    result = kextlog("db", "check", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 1
    assert result.stderr == f"kextlog: error: no kextlog database at {tmp_path / 'none.db'}\n"
    assert not (tmp_path / "none.db").exists()


def test_a_checkpoint_cut_short_is_no_truncated_file(populated: PopulatedStore) -> None:
    """A full disk can stop a checkpoint after it wrote the file's new header
    but before the pages: the -wal file still holds them, and SQLite reads
    them from there."""
    db = populated.path
    in_wal(db, "UPDATE records SET message = message || zeroblob(2000)")  # many new pages
    with db.open("r+b") as file:
        file.seek(28)
        pages = int.from_bytes(file.read(4), "big")
        file.seek(28)
        file.write((pages + 500).to_bytes(4, "big"))  # the header of a larger file
    assert (pages + 500) * 4096 > db.stat().st_size
    result = run(db, ["sql", "-o", "json", "SELECT count(*) AS n FROM log"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"n": len(populated.records)}

"""Reading and pruning beside a real ingest daemon: the simulated kext and
ingest as processes, a real SQLite file; neither side may fail with
"database is locked", and ingest must keep committing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.processes import kextlog, start_ingest, start_simulator

pytestmark = pytest.mark.slow

READS = [
    ["query", "-n", "5"],
    ["query", "-p", "warning", "-S", "1m", "-o", "json"],
    ["query", "--pid", "312", "-n", "20", "-o", "csv"],
    ["query", "-g", "rename", "-n", "3", "--show-cursor"],
    ["sql", "SELECT level, count(*) FROM log GROUP BY level"],
    ["sql", "-o", "csv", "SELECT count(*) AS losses FROM lost"],
    ["stats", "-o", "json"],
]


def ingest_log(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def committed(db: Path) -> int:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT coalesce(sum(high_water), 0) FROM instances").fetchone()[
            0
        ]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        connection.close()


def committed_at_least(db: Path, records: int) -> Callable[[], bool]:
    return lambda: db.exists() and committed(db) >= records


def stop(process: object) -> int:
    process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    return process.wait(timeout=120)  # type: ignore[attr-defined]


def test_reading_while_ingest_commits_at_full_speed(tmp_path: Path) -> None:
    sock, db, log = tmp_path / "sim.sock", tmp_path / "k.db", tmp_path / "ingest.log"
    count = 200_000
    simulator = start_simulator(
        sock, "--rate", "0", "--count", str(count),
        "--ring", str(count), "--quiet-losses",
    )  # fmt: skip
    ingest = start_ingest(sock, db, log=log)
    try:
        wait_until(committed_at_least(db, 1), "ingest to commit")
        runs = 0
        while simulator.poll() is None or runs < len(READS):
            args = READS[runs % len(READS)]
            result = kextlog(*args, "--db", str(db))
            assert result.returncode == 0, (args, result.stderr)
            assert "locked" not in result.stderr and result.stdout, args
            if args[0] == "stats":
                assert json.loads(result.stdout)["records"] > 0
            runs += 1
        during = committed(db)
    finally:
        if simulator.poll() is None:
            simulator.send_signal(signal.SIGINT)
        out, _ = simulator.communicate(timeout=300)
        assert stop(ingest) == 0
    counters = json.loads(out)
    assert (counters["generated"], counters["acked"], counters["lost"]) == (count, count, 0)
    assert "locked" not in ingest_log(log)
    assert runs >= len(READS)
    assert during == count  # every record acknowledged, while the reads ran
    result = kextlog("sql", "--db", str(db), "-o", "json", "SELECT count(*) AS n FROM records")
    assert json.loads(result.stdout) == {"n": count}


def test_prune_keeps_the_store_small_while_ingest_commits(tmp_path: Path) -> None:
    sock, db, log = tmp_path / "sim.sock", tmp_path / "k.db", tmp_path / "ingest.log"
    count, rate, cap, rounds = 160_000, 20_000, 2 << 20, 4  # 20 MB of records
    # A ring that holds them all: a loaded machine's slower ingest loses none.
    simulator = start_simulator(
        sock, "--rate", str(rate), "--count", str(count),
        "--ring", str(count), "--quiet-losses",
    )  # fmt: skip
    ingest = start_ingest(sock, db, log=log)
    sizes, during = [], []  # after each prune: the file's size, records committed meanwhile
    try:
        # A prune each time ingest has committed another fifth of the records
        # (events, not seconds: the same on a loaded machine).
        for round_ in range(1, rounds + 1):
            records = round_ * count // (rounds + 1)
            wait_until(committed_at_least(db, records), f"{records:,} records committed")
            before = committed(db)
            result = kextlog("prune", "--max-size", "2M", "--db", str(db))
            assert result.returncode in (0, 1), result.stderr
            assert "locked" not in result.stderr
            sizes.append(os.path.getsize(db))
            during.append(committed(db) - before)
        out, _ = simulator.communicate(timeout=300)
    finally:
        if simulator.poll() is None:
            simulator.send_signal(signal.SIGINT)
            simulator.wait(timeout=60)
        assert stop(ingest) == 0
    # Once ingest has stopped (its pid index merged to the end, which adds
    # pages a prune beside it does not wait for), one prune fits the cap.
    final = kextlog("prune", "--max-size", "2M", "--db", str(db))
    final_size = os.path.getsize(db)
    counters = json.loads(out)
    assert (counters["acked"], counters["lost"]) == (count, 0)  # ingest kept committing
    assert "locked" not in ingest_log(log)
    assert any(during) and committed(db) == count  # it committed while prune ran
    assert final.returncode == 0, final.stdout
    assert final_size <= cap, final.stdout
    # The file stopped growing: after each prune it held the cap and at most
    # what ingest committed while that prune ran (at the bytes a record takes
    # in the store), while 20 MB went through it.
    result = kextlog("stats", "--db", str(db), "-o", "json")
    (instance,) = json.loads(result.stdout)["instances"]
    per_record = cap / instance["stored"]
    for size, committed_meanwhile in zip(sizes, during, strict=True):
        assert size <= cap + 2 * per_record * committed_meanwhile + (1 << 20), (sizes, during)
    # Every seq is accounted for, by its own count: what is not stored was pruned.
    assert instance["high_water"] == count and instance["discrepancy"] == 0
    assert instance["stored"] + instance["pruned"] == count and instance["lost"] == 0
    assert 0 < instance["stored"] < count / 4

"""Reading and pruning beside a real ingest daemon: the simulated kext and
ingest as processes, a real SQLite file; neither side may fail with
"database is locked", and ingest must keep committing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.processes import kextlog, start, wait_for_socket

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


def wait_for_records(db: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not db.exists() or committed(db) == 0:
        assert time.monotonic() < deadline, "ingest committed nothing"
        time.sleep(0.02)


def stop(process: object) -> int:
    process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    return process.wait(timeout=60)  # type: ignore[attr-defined]


def test_reading_while_ingest_commits_at_full_speed(tmp_path: Path) -> None:
    sock, db, log = tmp_path / "sim.sock", tmp_path / "k.db", tmp_path / "ingest.log"
    count = 200_000
    simulator = start(
        "simulate", "--socket", str(sock), "--rate", "0", "--count", str(count),
        "--ring", str(count), "--quiet-losses",
    )  # fmt: skip
    wait_for_socket(sock)
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), log=log)
    try:
        wait_for_records(db)
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
        out, _ = simulator.communicate(timeout=60)
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
    count, rate, cap = 160_000, 20_000, 2 << 20  # 8 s of records, 20 MB of them
    simulator = start(
        "simulate", "--socket", str(sock), "--rate", str(rate), "--count", str(count),
        "--quiet-losses",
    )  # fmt: skip
    wait_for_socket(sock)
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), log=log)
    sizes, progress = [], []
    try:
        wait_for_records(db)
        while simulator.poll() is None:
            result = kextlog("prune", "--max-size", "2M", "--db", str(db))
            assert result.returncode in (0, 1), result.stderr
            assert "locked" not in result.stderr
            sizes.append(os.path.getsize(db))
            progress.append(committed(db))
        out, _ = simulator.communicate(timeout=60)
        final = kextlog("prune", "--max-size", "2M", "--db", str(db))
        final_size = os.path.getsize(db)  # before ingest's last writes as it stops
    finally:
        if simulator.poll() is None:
            simulator.send_signal(signal.SIGINT)
            simulator.wait(timeout=60)
        assert stop(ingest) == 0
    counters = json.loads(out)
    assert (counters["acked"], counters["lost"]) == (count, 0)  # ingest kept committing
    assert "locked" not in ingest_log(log)
    assert len(progress) >= 2 and progress == sorted(progress) and progress[-1] > progress[0]
    assert final.returncode == 0, final.stderr
    # The file stopped growing: it never held much more than what a few
    # seconds of records take, while 20 MB went through it.
    assert max(sizes[1:]) < 4 * cap, sizes
    assert final_size <= cap, final.stdout
    # Every seq is still accounted for: what is not stored was pruned.
    result = kextlog("stats", "--db", str(db), "-o", "json")
    (instance,) = json.loads(result.stdout)["instances"]
    assert instance["high_water"] == count
    assert instance["stored"] + instance["pruned"] == count and instance["lost"] == 0
    assert 0 < instance["stored"] < count / 4

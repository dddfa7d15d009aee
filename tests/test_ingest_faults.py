"""Ingest on a disk that fills up, with the real simulator and real ingest
processes: it stays up, acknowledges nothing it has not committed, says so
once, and stores everything once space returns; killed meanwhile, it loses
nothing either (the producer's ring still holds what it never acknowledged)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kextlog_store.status import read_status
from kextlog_store.store import database_url
from tests.processes import kextlog, start, wait_for_socket
from tests.test_delivery import accounting, integrity, stop

RATE, COUNT = 5_000, 40_000  # eight seconds of records...
RING = 100_000  # ... which the simulator's ring holds all of: no loss is allowed
ROOM = 256 * 1024  # bytes left free on the file system once the ballast is in


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB file system of its own (tmpfs: we run as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(disk: Path, room: int) -> Path:
    """A ballast file that leaves only room bytes free."""
    usage = os.statvfs(disk)
    ballast = disk / "ballast"
    descriptor = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(descriptor, 0, usage.f_bavail * usage.f_frsize - room)
    finally:
        os.close(descriptor)
    return ballast


def status(db: Path) -> dict:
    current = read_status(database_url(str(db)))
    assert current is not None and current.alive
    return current.snapshot


def wait_for_outage(db: Path) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snapshot = read_status(database_url(str(db)))
        if snapshot is not None and snapshot.snapshot.get("store_outage"):
            return snapshot.snapshot
        time.sleep(0.1)
    raise TimeoutError("ingest never published a store outage")


def wait_for_stored(db: Path, records: int) -> None:
    """Until ingest has committed that many: the disk fills up mid-run."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = read_status(database_url(str(db)))
        if current is not None and current.snapshot["stored"] >= records:
            return
        time.sleep(0.05)
    raise TimeoutError(f"ingest never stored {records} records")


def start_pipeline(tmp_path: Path, db: Path) -> tuple[subprocess.Popen[str], Path]:
    sock = tmp_path / "sim.sock"
    simulator = start(
        "simulate", "--socket", str(sock), "--rate", str(RATE), "--count", str(COUNT),
        "--ring", str(RING), log=tmp_path / "sim.log",
    )  # fmt: skip
    wait_for_socket(sock)
    return simulator, sock


def assert_all_stored_once(db: Path, simulator: subprocess.Popen[str]) -> None:
    out, _ = simulator.communicate(timeout=120)  # it ends once all is acknowledged
    assert simulator.returncode == 0
    counters = json.loads(out)
    assert counters["last_seq"] == COUNT and counters["lost"] == 0
    assert counters["ring_high_water"] < RING  # the ring never overflowed
    (instance,) = accounting(db).values()
    assert instance["stored"] == list(range(1, COUNT + 1))  # each seq once, none missing
    assert instance["losses"] == [] and instance["high_water"] == COUNT
    assert integrity(db) == "ok"


def test_a_full_disk_holds_the_records_until_space_returns(
    tmp_path: Path, small_disk: Path
) -> None:
    db, ingest_log = small_disk / "k.db", tmp_path / "ingest.log"
    simulator, sock = start_pipeline(tmp_path, db)
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), log=ingest_log)
    wait_for_stored(db, COUNT // 8)
    ballast = fill(small_disk, ROOM)

    outage = wait_for_outage(db)["store_outage"]
    assert outage["what"] == "disk full" and outage["waiting"] > 0
    # It stays up, and takes nothing more while the producer goes on.
    committed = status(db)["stored"]
    time.sleep(2.0)
    assert ingest.poll() is None
    assert status(db)["stored"] == committed and status(db)["store_outage"] is not None
    shown = kextlog("status", "--db", str(db))
    assert shown.returncode == 0
    assert "  store: disk full since " in shown.stdout
    assert "records waiting, retrying (database or disk is full)" in shown.stdout

    ballast.unlink()
    assert_all_stored_once(db, simulator)
    assert status(db)["store_outage"] is None
    stop(ingest)
    log = ingest_log.read_text()
    assert log.count(": disk full (") == 1, log  # the outage, once
    assert "acknowledging nothing, retrying" in log
    assert log.count("writable again after") == 1, log  # and its end
    assert "Traceback" not in log


def test_killed_during_the_outage_it_had_acknowledged_nothing(
    tmp_path: Path, small_disk: Path
) -> None:
    """Had ingest acknowledged what it held but could not commit, the ring
    would have let it go, and the next ingest would find it lost."""
    db, ingest_log = small_disk / "k.db", tmp_path / "ingest.log"
    simulator, sock = start_pipeline(tmp_path, db)
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), log=ingest_log)
    wait_for_stored(db, COUNT // 8)
    ballast = fill(small_disk, ROOM)
    assert wait_for_outage(db)["store_outage"]["waiting"] > 0
    time.sleep(1.0)  # retried meanwhile
    ingest.kill()
    ingest.wait()

    ballast.unlink()
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), log=ingest_log)
    assert_all_stored_once(db, simulator)
    stop(ingest)


def test_a_lock_held_past_the_busy_timeout_is_waited_out(tmp_path: Path) -> None:
    db, ingest_log = tmp_path / "k.db", tmp_path / "ingest.log"
    simulator, sock = start_pipeline(tmp_path, db)
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), log=ingest_log)
    wait_for_stored(db, COUNT // 8)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, for longer than ingest waits
    try:
        outage = wait_for_outage(db)["store_outage"]
        assert outage["what"] == "database is locked"
        assert ingest.poll() is None
    finally:
        holder.rollback()
        holder.close()
    assert_all_stored_once(db, simulator)
    stop(ingest)
    log = ingest_log.read_text()
    assert log.count(": database is locked; holding") == 1, log
    assert log.count("writable again after") == 1, log

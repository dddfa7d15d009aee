"""Ingest when the store cannot be written, with the real simulator and real
ingest processes: a file system that fills up (a small tmpfs), a file size
limit (RLIMIT_FSIZE: writes fail with an I/O error, and no mount is needed),
a lock held past the busy timeout.  Ingest stays up, acknowledges nothing
it has not committed, says so once, and stores everything once it can;
killed meanwhile, it loses nothing either (the producer's ring still holds
what it never acknowledged)."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kextlog_store.status import read_status
from kextlog_store.store.location import database_url
from tests.conftest import wait_until
from tests.processes import (
    COMMAND,
    environment,
    kextlog,
    start_ingest,
    start_simulator,
)
from tests.test_delivery import accounting, integrity, stop, wait_for_line

RATE, COUNT = 5_000, 40_000  # eight seconds of records...
RING = 100_000  # ... which the simulator's ring holds all of: no loss is allowed
ROOM = 256 * 1024  # bytes left free on the small disk by its ballast


@dataclass
class Squeeze:
    """A way to leave ingest no room in its store, and to give it back.  The
    squeeze is in place before ingest starts: it then has records to write
    however fast it would have caught up with the producer."""

    directory: Path  # where the store goes
    what: str  # the outage ingest reports
    error: str  # SQLite's words for it
    take: Callable[[Path], list[str]]  # given the store; the command prefix ingest runs under
    give_back: Callable[[subprocess.Popen[str] | None], None]  # given the ingest still running


@pytest.fixture(params=["tmpfs", "file size limit"])
def squeeze(request: pytest.FixtureRequest, tmp_path: Path) -> Squeeze:
    if request.param == "tmpfs":
        return full_disk(request.getfixturevalue("small_disk"))
    return file_size_limit(tmp_path)


def full_disk(mount: Path) -> Squeeze:
    """The small disk, filled up to ROOM by a ballast file."""
    ballast = mount / "ballast"

    def fill(_db: Path) -> list[str]:
        if not ballast.exists():
            usage = os.statvfs(mount)
            descriptor = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(descriptor, 0, usage.f_bavail * usage.f_frsize - ROOM)
            finally:
                os.close(descriptor)
        return []

    def empty(_ingest: subprocess.Popen[str] | None) -> None:
        ballast.unlink()

    return Squeeze(mount, "disk full", "database or disk is full", fill, empty)


def file_size_limit(tmp_path: Path) -> Squeeze:
    """RLIMIT_FSIZE of the ingest process, from its start (prlimit), and
    lifted again from outside (Python ignores SIGXFSZ: a write past the
    limit fails with EFBIG).  The limit is per file: at the database file's
    present size, neither it nor the -wal file can grow (a limit above it
    would let a checkpoint move the -wal file into it, and the -wal file
    start over)."""

    def limit(db: Path) -> list[str]:
        # The soft limit: raising it again needs no privilege.
        return ["prlimit", f"--fsize={db.stat().st_size}:unlimited", "--"]

    def lift(ingest: subprocess.Popen[str] | None) -> None:
        if ingest is not None:
            unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            resource.prlimit(ingest.pid, resource.RLIMIT_FSIZE, unlimited)

    return Squeeze(tmp_path, "I/O error", "disk I/O error", limit, lift)


def start_squeezed(squeeze: Squeeze, sock: Path, db: Path, log: Path) -> subprocess.Popen[str]:
    """An ingest with no room in its store (created first, as it is empty)."""
    assert kextlog("db", "upgrade", "--db", str(db)).returncode == 0
    command = [*squeeze.take(db), *COMMAND, "ingest", "--source", f"unix:{sock}", "--db", str(db)]
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("a"),
        text=True,
        env=environment(),
    )


def status(db: Path) -> dict:
    current = read_status(database_url(str(db)))
    assert current is not None and current.alive
    return current.snapshot


def snapshot(db: Path) -> dict:
    """The last state ingest published ({} before it did)."""
    current = read_status(database_url(str(db)))
    return current.snapshot if current is not None else {}


def wait_for_outage(db: Path, pid: int) -> dict:
    """Until the ingest process pid publishes a store outage."""
    wait_until(
        lambda: snapshot(db).get("pid") == pid and snapshot(db)["store_outage"],
        "ingest to publish a store outage",
    )
    return snapshot(db)


def wait_for_retries(db: Path, publishes: int = 3) -> None:
    """Until ingest has published its state publishes more times while it
    waits between tries: it tried again at least publishes - 1 times."""
    seen = {snapshot(db)["updated_ns"]}
    wait_until(
        lambda: seen.add(snapshot(db)["updated_ns"]) or len(seen) > publishes,
        "ingest to try again",
    )


def wait_for_stored(db: Path, records: int) -> None:
    """Until ingest has committed that many: the disk fills up mid-run."""
    wait_until(lambda: snapshot(db).get("stored", 0) >= records, f"{records:,} records stored")


def start_pipeline(tmp_path: Path, count: int = COUNT) -> tuple[subprocess.Popen[str], Path]:
    sock = tmp_path / f"sim-{count}.sock"
    simulator = start_simulator(
        sock, "--rate", str(RATE), "--count", str(count),
        "--ring", str(RING), log=tmp_path / "sim.log",
    )  # fmt: skip
    return simulator, sock


def assert_all_stored_once(db: Path, simulator: subprocess.Popen[str]) -> None:
    out, _ = simulator.communicate(timeout=300)  # it ends once all is acknowledged
    assert simulator.returncode == 0
    counters = json.loads(out)
    assert counters["last_seq"] == COUNT and counters["lost"] == 0
    assert counters["ring_high_water"] < RING  # the ring never overflowed
    instance = accounting(db)[counters["instance"]]
    assert instance["stored"] == list(range(1, COUNT + 1))  # each seq once, none missing
    assert instance["losses"] == [] and instance["high_water"] == COUNT
    assert integrity(db) == "ok"


def test_the_batch_is_held_until_the_store_can_be_written(tmp_path: Path, squeeze: Squeeze) -> None:
    db, ingest_log = squeeze.directory / "k.db", tmp_path / "ingest.log"
    simulator, sock = start_pipeline(tmp_path)
    ingest = start_squeezed(squeeze, sock, db, ingest_log)

    outage = wait_for_outage(db, ingest.pid)["store_outage"]
    assert outage["what"] == squeeze.what and outage["waiting"] > 0
    # It stays up, and takes nothing more while it tries again.
    committed = status(db)["stored"]
    wait_for_retries(db)
    assert ingest.poll() is None
    assert status(db)["stored"] == committed and status(db)["store_outage"] is not None
    shown = kextlog("status", "--db", str(db))
    assert shown.returncode == 0
    assert f"  store: {squeeze.what} since " in shown.stdout
    assert f"records waiting, retrying ({squeeze.error})" in shown.stdout

    squeeze.give_back(ingest)
    assert_all_stored_once(db, simulator)
    assert status(db)["store_outage"] is None
    stop(ingest)
    log = ingest_log.read_text()
    assert log.count(f": {squeeze.what} (") == 1, log  # the outage, once
    assert "acknowledging nothing, retrying" in log
    assert log.count("writable again after") == 1, log  # and its end
    assert "Traceback" not in log


def test_stopped_or_killed_during_the_outage_it_had_acknowledged_nothing(
    tmp_path: Path, squeeze: Squeeze
) -> None:
    """Had ingest acknowledged what it held but could not commit, the ring
    would have let it go, and the next ingest would find it lost."""
    db, ingest_log = squeeze.directory / "k.db", tmp_path / "ingest.log"
    simulator, sock = start_pipeline(tmp_path)
    ingest = start_squeezed(squeeze, sock, db, ingest_log)
    waiting = wait_for_outage(db, ingest.pid)["store_outage"]["waiting"]
    assert waiting > 0
    # Asked to stop, it cannot store what it holds: it says so, and fails.
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=120) == 1
    last = ingest_log.read_text().splitlines()[-1]
    assert last == (
        f"kextlog: error: stopped with {waiting:,} records not stored in {db} "
        f"({squeeze.what}); the producers still hold them"
    )

    ingest = start_squeezed(squeeze, sock, db, ingest_log)
    wait_for_outage(db, ingest.pid)
    wait_for_retries(db)
    ingest.kill()
    ingest.wait()

    squeeze.give_back(None)
    ingest = start_ingest(sock, db, log=ingest_log)
    assert_all_stored_once(db, simulator)
    stop(ingest)


def test_a_lock_held_past_the_busy_timeout_is_waited_out(tmp_path: Path) -> None:
    db, ingest_log = tmp_path / "k.db", tmp_path / "ingest.log"
    simulator, sock = start_pipeline(tmp_path)
    assert kextlog("db", "upgrade", "--db", str(db)).returncode == 0
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, for longer than ingest waits
    try:
        ingest = start_ingest(sock, db, log=ingest_log)
        outage = wait_for_outage(db, ingest.pid)["store_outage"]
        assert outage["what"] == "database is locked"
        assert ingest.poll() is None
        # Alive, though its writer waits for the lock again.
        shown = kextlog("status", "--db", str(db))
        assert shown.returncode == 0 and "  store: database is locked since " in shown.stdout
    finally:
        holder.rollback()
        holder.close()
    assert_all_stored_once(db, simulator)
    stop(ingest)
    log = ingest_log.read_text()
    assert log.count(": database is locked; ") == 1, log
    assert log.count("writable again after") == 1, log


def remount(mount: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)


def test_a_read_only_file_system_is_waited_out(tmp_path: Path, small_disk: Path) -> None:
    """Restarted on a file system that went read-only.  Linux refuses to
    remount one read-only while a process writes to it, so the first ingest,
    of a first producer, dies first (killed: a clean stop removes the -wal
    file, and SQLite cannot open a WAL database without one on a read-only
    file system).  The producer that meets the read-only store starts after."""
    db, ingest_log = small_disk / "k.db", tmp_path / "ingest.log"
    first, first_sock = start_pipeline(tmp_path, count=COUNT // 8)
    ingest = start_ingest(first_sock, db, log=ingest_log)
    wait_for_stored(db, COUNT // 8)
    ingest.kill()
    ingest.wait()
    first.kill()
    first.communicate()
    remount(small_disk, "ro")
    try:
        simulator, sock = start_pipeline(tmp_path)
        ingest = start_ingest(sock, db, log=ingest_log)
        wait_for_line(ingest_log, "acknowledging nothing, retrying", count=1)
        # Waiting to try again, it could not publish its state either.
        wait_for_line(ingest_log, "cannot publish the state", count=1)
        assert ingest.poll() is None
    finally:
        remount(small_disk, "rw")
    assert_all_stored_once(db, simulator)
    stop(ingest)
    log = ingest_log.read_text()
    assert log.count(": read-only (attempt to write a readonly database); ") == 1, log
    assert log.count("writable again after") == 1, log
    # Its state could not be published meanwhile: said once.
    assert log.count("cannot publish the state for `kextlog status`") == 1, log

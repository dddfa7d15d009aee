"""The pipeline end to end: the simulated kext and the ingest daemon as real
processes, a real socket of each type, a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from kextlog_store.config import IngestConfig
from kextlog_store.ingest.committer import Latencies
from kextlog_store.ingest.daemon import Daemon
from kextlog_store.ingest.pipeline import Ingest, IngestOptions
from kextlog_store.sources import parse_source
from kextlog_store.store.location import database_url
from kextlog_store.store.migrate import upgrade
from kextlog_store.store.retention import RetentionPolicy
from kextlog_store.store.writer import Writer
from tests.conftest import wait_until
from tests.processes import connect, kextlog, start_ingest, start_simulator

SOCKET_TYPES = ["seqpacket", "stream"]


def stored(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT seq, level, pid, tid, process, message, instance FROM log ORDER BY seq"
        ).fetchall()


def recorded(record: Path) -> list[tuple]:
    rows = []
    levels = {"trace": 1, "debug": 2, "info": 3, "warning": 4, "error": 5}
    for line in record.read_text().splitlines():
        item = json.loads(line)
        rows.append(
            (
                item["seq"],
                item["level"],
                item["pid"],
                item["tid"],
                item["process"],
                item["message"],
                item["instance"],
            )
        )
        assert item["level"] in levels
    return rows


@pytest.mark.parametrize("socket_type", SOCKET_TYPES)
def test_every_record_stored_exactly_once(tmp_path: Path, socket_type: str) -> None:
    sock, db, record = tmp_path / "sim.sock", tmp_path / "k.db", tmp_path / "sent.jsonl"
    simulator = start_simulator(
        sock, "--socket-type", socket_type,
        "--count", "100000", "--rate", "0", "--record", str(record),
    )  # fmt: skip
    ingest = start_ingest(sock, db)
    # The simulator exits once every record it generated is acknowledged.
    out, err = simulator.communicate(timeout=120)
    assert simulator.returncode == 0, err
    counters = json.loads(out)
    assert counters["first_seq"] == 1 and counters["last_seq"] == 100000
    assert counters["generated"] == 100000 and counters["lost"] == 0
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=30) == 0

    rows = stored(db)
    assert [row[0] for row in rows] == list(range(1, 100001))
    assert rows == recorded(record)
    assert {row[6] for row in rows} == {counters["instance"]}
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT high_water, filtered FROM instances").fetchall() == [
            (100000, 0)
        ]
        assert connection.execute("SELECT count(*) FROM losses").fetchone() == (0,)
        # Stopping merged every record into the pid index.
        assert connection.execute("SELECT pid_indexed_seq FROM instances").fetchone() == (100000,)
        assert connection.execute(
            "SELECT count(*) FROM pid_index p JOIN records r ON r.id = p.id"
            " AND r.pid = p.pid AND r.time_ns = p.time_ns"
        ).fetchone() == (100000,)


def test_min_level_records_are_acknowledged_and_counted(tmp_path: Path) -> None:
    sock, db, record = tmp_path / "sim.sock", tmp_path / "k.db", tmp_path / "sent.jsonl"
    simulator = start_simulator(
        sock, "--count", "20000", "--rate", "0",
        "--record", str(record),
    )  # fmt: skip
    ingest = start_ingest(sock, db, "--min-level", "warning")
    # Filtered records are acknowledged too, or the simulator would not finish.
    assert simulator.wait(timeout=60) == 0
    ingest.send_signal(signal.SIGINT)
    assert ingest.wait(timeout=30) == 0

    sent = recorded(record)
    wanted = [row for row in sent if row[1] in ("warning", "error")]
    assert stored(db) == wanted
    with sqlite3.connect(db) as connection:
        high_water, filtered = connection.execute(
            "SELECT high_water, filtered FROM instances"
        ).fetchone()
    assert (high_water, filtered) == (20000, len(sent) - len(wanted))


def test_echo_prints_what_is_stored(tmp_path: Path) -> None:
    sock, db = tmp_path / "sim.sock", tmp_path / "k.db"
    simulator = start_simulator(sock, "--count", "500", "--rate", "0")
    ingest = start_ingest(sock, db, "--echo")
    assert simulator.wait(timeout=60) == 0
    ingest.send_signal(signal.SIGTERM)
    out, _ = ingest.communicate(timeout=30)
    assert ingest.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 500
    first = stored(db)[0]
    assert lines[0].endswith(f"{first[4]}[{first[2]}:{first[3]}]: {first[5]}")


def test_ingest_waits_for_a_producer_that_starts_later(tmp_path: Path) -> None:
    sock, db = tmp_path / "sim.sock", tmp_path / "k.db"
    ingest = start_ingest(sock, db)
    assert ingest.stderr is not None
    assert ingest.stderr.readline().startswith(f"kextlog ingest: storing in {db}, ")
    first_complaint = ingest.stderr.readline()
    assert "No such file or directory; retrying" in first_complaint
    simulator = start_simulator(sock, "--count", "3000", "--rate", "0")
    assert simulator.wait(timeout=60) == 0
    ingest.send_signal(signal.SIGTERM)
    _, err = ingest.communicate(timeout=30)
    assert ingest.returncode == 0
    assert [row[0] for row in stored(db)] == list(range(1, 3001))
    assert "retrying" not in err  # an outage is reported once, not at every attempt


def test_simulator_serves_one_client_on_a_private_socket(tmp_path: Path) -> None:
    sock = tmp_path / "sim.sock"
    simulator = start_simulator(sock, "--count", "10", "--rate", "0")
    try:
        first = connect(sock)
        assert len(first.recv(65536)) == 144  # HELLO
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        second = connect(sock)
        assert second.recv(65536) == b""  # refused: closed without a word
        first.close()
        second.close()
    finally:
        simulator.send_signal(signal.SIGTERM)
        out, _ = simulator.communicate(timeout=30)
    assert simulator.returncode == 0
    assert json.loads(out)["generated"] == 10


def test_bad_source_is_a_one_line_error(tmp_path: Path) -> None:
    result = kextlog("ingest", "--source", "tcp:1.2.3.4", "--db", str(tmp_path / "k.db"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unknown source" in result.stderr
    assert not (tmp_path / "k.db").exists()


def test_simulator_refuses_a_path_in_use(tmp_path: Path) -> None:
    sock = tmp_path / "sim.sock"
    simulator = start_simulator(sock, "--rate", "10")
    try:
        second = kextlog("simulate", "--socket", str(sock), "--count", "1")
        assert second.returncode == 1
        assert second.stderr.strip().endswith("is in use by another producer")
    finally:
        simulator.send_signal(signal.SIGINT)
        simulator.communicate(timeout=30)
    assert simulator.returncode == 0


def test_simulator_replaces_a_stale_socket(tmp_path: Path) -> None:
    sock = tmp_path / "sim.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(str(sock))
    stale.close()  # a socket file nobody listens on: what a killed simulator leaves
    simulator = start_simulator(sock, "--rate", "10")
    try:
        client = connect(sock)
        assert len(client.recv(65536)) == 144  # HELLO from the new simulator
        client.close()
    finally:
        simulator.send_signal(signal.SIGTERM)
        simulator.communicate(timeout=30)
    assert simulator.returncode == 0


def test_latency_percentiles_are_within_two_percent() -> None:
    latencies = Latencies()
    assert latencies.summary() == {"p50": None, "p99": None, "samples": 0}
    for ms in range(1, 1001):  # 1 ms .. 1 s, evenly
        latencies.add(ms * 1_000_000)
    summary = latencies.summary()
    assert summary["samples"] == 1000
    assert 500 <= summary["p50"] <= 500 * 1.02 + 1e-9
    assert 990 <= summary["p99"] <= 990 * 1.02 + 1e-9


def debugging(db: Path) -> int:
    """The trace and debug records stored."""
    with sqlite3.connect(db) as connection:
        query = "SELECT count(*) FROM log WHERE level IN ('trace', 'debug')"
        return connection.execute(query).fetchone()[0]


def test_the_daemon_applies_its_retention_while_it_commits(tmp_path: Path) -> None:
    sock, db = tmp_path / "sim.sock", tmp_path / "k.db"
    simulator = start_simulator(sock, "--rate", "20000", "--count", "60000")
    writer = Writer(upgrade(database_url(str(db))))
    options = IngestOptions(
        sources=[parse_source(f"unix:{sock}")],
        retention=RetentionPolicy.parse("trace..debug=0s"),  # gone as soon as seen
        retention_seconds=0.2,
    )
    stop = threading.Event()
    daemon = Ingest(writer, options, stop)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert simulator.wait(timeout=60) == 0  # every record acknowledged meanwhile
        # A round after the last commit leaves none: all are older than 0 s.
        wait_until(lambda: debugging(db) == 0, "a round of retention after the last commit")
    finally:
        stop.set()
        runner.join(timeout=30)
    with sqlite3.connect(db) as connection:
        levels = dict(connection.execute("SELECT level, count(*) FROM log GROUP BY level"))
        high_water = connection.execute("SELECT high_water FROM instances").fetchone()[0]
    assert high_water == 60000  # pruning never moves the accounting back
    assert levels.get("info", 0) > 20000 and levels.get("error", 0) > 1000
    assert levels.get("trace", 0) + levels.get("debug", 0) == 0


def test_a_store_without_a_size_setting_is_capped_as_journald_caps_its_own(
    small_disk: Path, tmp_path: Path
) -> None:
    """The smaller of 10% of the store's file system and 4 GiB, as
    journald's SystemMaxUse=; --max-size wins, 0 for no cap."""
    sock = tmp_path / "sim.sock"

    def cap(db: str, max_size: str | None = None) -> int | None:
        settings = IngestConfig(sources=(f"unix:{sock}",), database=db, max_size=max_size)
        retention = Daemon(settings, None).options.retention
        return None if retention is None else retention.max_size_bytes

    disk = os.statvfs(small_disk)
    assert cap(str(small_disk / "k.db")) == disk.f_blocks * disk.f_frsize // 10 == 1677721
    assert cap(str(small_disk / "not" / "yet" / "k.db")) == 1677721  # where it will be
    big = os.statvfs(tmp_path)
    assert big.f_blocks * big.f_frsize > 40 << 30, "needs a file system over 40 GiB"
    assert cap(str(tmp_path / "k.db")) == 4 << 30
    assert cap(str(tmp_path / "k.db"), "2GB") == 2 << 30
    assert cap(str(tmp_path / "k.db"), "0") is None
    assert cap("postgresql://kextlog@localhost/kextlog") is None  # its files do not shrink

    # The daemon says where it stores and how big the store may grow.
    db = small_disk / "k.db"
    simulator = start_simulator(sock, "--count", "100", "--rate", "0")
    log = tmp_path / "ingest.log"
    ingest = start_ingest(sock, db, log=log)
    try:
        assert simulator.wait(timeout=60) == 0
    finally:
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(timeout=30) == 0
    assert log.read_text().splitlines()[0] == (
        f"kextlog ingest: storing in {db}, the oldest records removed above 1.6 MiB "
        "(the default: 10% of its file system, at most 4 GiB); --max-size 0 for no cap"
    )

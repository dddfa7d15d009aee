"""The delivery contract, proved with the real simulator (the kext's C core)
and real ingest processes: crashes lose nothing the ring still holds, every
loss is a row, a reloaded kext is a new instance and no loss."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kextlog_store.status import read_status
from kextlog_store.store.location import database_url
from tests.processes import kextlog, start_ingest, start_simulator


def accounting(db: Path) -> dict[str, dict]:
    """Per instance: the stored seqs, the loss rows, the high-water mark."""
    with sqlite3.connect(db) as connection:
        result = {
            uuid: {"stored": [], "losses": [], "high_water": high_water, "filtered": filtered}
            for uuid, high_water, filtered in connection.execute(
                "SELECT uuid, high_water, filtered FROM instances"
            )
        }
        for uuid, seq in connection.execute(
            "SELECT i.uuid, r.seq FROM records r JOIN instances i ON i.id = r.instance_id"
            " ORDER BY r.seq"
        ):
            result[uuid]["stored"].append(seq)
        for row in connection.execute(
            "SELECT i.uuid, l.first_seq, l.last_seq, l.count, l.first_time_ns, l.last_time_ns,"
            " l.reason FROM losses l JOIN instances i ON i.id = l.instance_id ORDER BY l.first_seq"
        ):
            result[row[0]]["losses"].append(row[1:])
    return result


def assert_each_seq_once(instance: dict, last_seq: int) -> None:
    """Every seq 1..last_seq is stored or inside a loss, exactly once."""
    ranges = [(seq, seq) for seq in instance["stored"]]
    for first, last, count, *_ in instance["losses"]:
        assert count == last - first + 1
        ranges.append((first, last))
    following = 1  # ranges, in order, must tile 1..last_seq: no gap, no overlap
    for first, last in sorted(ranges):
        assert first == following, f"seq {min(first, following)} is missing or twice"
        following = last + 1
    assert following == last_seq + 1
    assert instance["high_water"] == last_seq


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


# The crash test's size; the long version by hand:
#   KEXTLOG_CRASH="50000 60 20 4000000" .venv/bin/pytest tests/test_delivery.py -k killed
# (records/s, seconds of generation, kills, ring records).
CRASH = os.environ.get("KEXTLOG_CRASH", "10000 15 12 100000")


def test_ingest_killed_again_and_again_loses_nothing(tmp_path: Path) -> None:
    rate, seconds, kills, ring = (int(value) for value in CRASH.split())
    count = rate * seconds
    sock, db = tmp_path / "sim.sock", tmp_path / "k.db"
    ingest_log, sim_log = tmp_path / "ingest.log", tmp_path / "sim.log"
    simulator = start_simulator(
        sock, "--rate", str(rate), "--count", str(count),
        "--ring", str(ring), log=sim_log,
    )  # fmt: skip
    chance = random.Random(20261127)
    pause = seconds / kills / 2  # kills spread over the generation
    killed = 0
    # Only while the producer generates: a daemon started after that may
    # find everything acknowledged, and a kill then lands on nothing (on a
    # loaded machine, each start takes seconds).
    while killed < kills and "generated" not in sim_log.read_text():
        ingest = start_ingest(sock, db, log=ingest_log)
        wait_for_line(ingest_log, "connected to", count=killed + 1)
        time.sleep(chance.uniform(0.0, pause))
        ingest.kill()  # SIGKILL: no flush, no ACK, maybe mid-transaction
        ingest.wait()
        killed += 1
    assert killed >= min(kills, 3), f"only {killed} kills while the producer generated"
    ingest = start_ingest(sock, db, log=ingest_log)
    out, _ = simulator.communicate(timeout=seconds * 10 + 120)  # ends once all is acknowledged
    assert simulator.returncode == 0
    wait_for_daemon(db, ingest.pid)  # (the last kill may have found all acknowledged)
    stop(ingest)

    counters = json.loads(out)
    assert counters["lost"] == 0 and counters["last_seq"] == count
    # The kills landed on records sent but not acknowledged: the producer
    # sent those again (its ring's frames, each counted once per send), and
    # each daemon resumed where the store stood, not where the last one was.
    replayed = counters["sent"] - count
    assert replayed > 0, "no kill landed on unacknowledged records: nothing was sent twice"
    resumes = [int(line.rsplit(" ", 1)[1]) for line in ingest_log.read_text().splitlines()
               if "resuming at seq" in line]  # fmt: skip
    assert counters["connects"] == len(resumes) >= killed  # every kill cut a live connection
    assert resumes == sorted(resumes) and resumes[-1] > 1
    (instance,) = accounting(db).values()
    assert instance["stored"] == list(range(1, count + 1))  # each seq once, none missing
    assert instance["losses"] == []
    assert integrity(db) == "ok"


def test_overflow_while_ingest_is_down_is_recorded_exactly(tmp_path: Path) -> None:
    sock, db, sim_log = tmp_path / "sim.sock", tmp_path / "k.db", tmp_path / "sim.log"
    # 12 s of records: the second daemon is still connected when the status
    # is read, also on a loaded machine where it takes seconds to start.
    count = 240_000
    simulator = start_simulator(
        sock, "--rate", "20000", "--count", str(count),
        "--ring", "5000", log=sim_log,
    )  # fmt: skip
    ingest_log = tmp_path / "ingest.log"
    ingest = start_ingest(sock, db, log=ingest_log)
    wait_for_line(ingest_log, "connected to", count=1)
    time.sleep(0.5)
    stop(ingest)
    time.sleep(1.0)  # 20,000 records offered to a ring of 5,000
    ingest = start_ingest(sock, db, log=ingest_log)
    # Connected again after the overflow: status shows the losses and the ring.
    running = wait_for_source(
        db, lambda source: source["connected"] and source["lost"] > 0 and source["ring"] is not None
    )
    assert running["ring"]["capacity"] == 5000 and running["ring"]["producer_lost"] > 0
    assert 0 <= running["lag"] < count
    out, _ = simulator.communicate(timeout=120)
    assert simulator.returncode == 0
    counters = json.loads(out)
    assert running["instance"] == counters["instance"]
    done = wait_for_source(db, lambda source: source["committed_seq"] == count)
    assert done["lost"] == counters["lost"] and done["lag"] == 0
    stop(ingest)

    (instance,) = accounting(db).values()
    assert counters["lost"] > 10000
    assert_each_seq_once(instance, count)
    lost = sum(count for _, _, count, *_ in instance["losses"])
    assert lost == counters["lost"]
    for _, _, _, first_time, last_time, reason in instance["losses"]:
        assert reason == "ring-full"
        assert 0 < first_time <= last_time
    # Older records were kept for the daemon: the first loss starts after the ring filled.
    assert instance["losses"][0][0] > 5000
    # Each lost message went to the last-resort print, as the kext's printf.
    assert sim_log.read_text().count("kextlog: lost seq") == counters["lost"]
    assert integrity(db) == "ok"

    stopped = kextlog("status", "--db", str(db))
    assert stopped.returncode == 3
    assert stopped.stdout.startswith("ingest: stopped")
    assert f"lost {lost:,} records" in stopped.stdout
    views = kextlog("sql", "--db", str(db), "-o", "json", "SELECT sum(count) AS n FROM lost")
    assert json.loads(views.stdout) == {"n": lost}
    markers = [
        line for line in kextlog("query", "--db", str(db)).stdout.splitlines()
        if line.startswith("-- ")
    ]  # fmt: skip
    assert len(markers) == len(instance["losses"])


def test_a_reloaded_kext_is_a_new_instance_and_no_loss(tmp_path: Path) -> None:
    sock, db = tmp_path / "sim.sock", tmp_path / "k.db"
    ingest = start_ingest(sock, db)
    runs = []
    for seed in (1, 2):
        simulator = start_simulator(
            sock, "--rate", "0", "--count", "30000",
            "--seed", str(seed),
        )  # fmt: skip
        out, _ = simulator.communicate(timeout=60)
        assert simulator.returncode == 0
        runs.append(json.loads(out))
        # The simulator has gone: status says so, and what it last knew.
        source = wait_for_source(db, gone(runs[-1]["instance"]))
        assert source["committed_seq"] == 30000
        assert "No such file or directory" in source["error"]
    shown = kextlog("status", "--db", str(db))
    assert shown.returncode == 0  # the daemon runs; the source is down
    assert f"unix:{sock}: disconnected" in shown.stdout
    stop(ingest)

    instances = accounting(db)
    assert set(instances) == {run["instance"] for run in runs}
    for run in runs:
        assert instances[run["instance"]]["stored"] == list(range(1, 30001))
        assert instances[run["instance"]]["losses"] == []


@pytest.mark.parametrize("resume", ["in time", "late"])
def test_records_acknowledged_to_another_store_are_a_released_loss(
    tmp_path: Path, resume: str
) -> None:
    """The producer released what the first store acknowledged: the second
    store counts it `released`, whether its RESUME came in time (the
    producer's RELEASED LOSS says so) or late (the stream began at the
    oldest record held, which its HELLO named)."""
    sock, first, second = tmp_path / "sim.sock", tmp_path / "first.db", tmp_path / "second.db"
    count = 20_000
    # Late: no time to RESUME at all; the producer refuses the RESUME that comes.
    timeout = "0" if resume == "late" else "10"
    simulator = start_simulator(
        sock, "--rate", "2000", "--count", str(count),
        "--ring", str(count), "--resume-timeout", timeout, log=tmp_path / "sim.log",
    )  # fmt: skip
    ingest = start_ingest(sock, first)
    wait_for_source(first, lambda source: (source["committed_seq"] or 0) >= 2000)
    stop(ingest)  # its last ACK releases what it stored from the producer's ring
    (acknowledged,) = accounting(first).values()
    released = acknowledged["high_water"]
    assert 2000 <= released < count
    ingest = start_ingest(sock, second, log=tmp_path / "b")
    out, _ = simulator.communicate(timeout=120)
    assert simulator.returncode == 0
    stop(ingest)

    counters = json.loads(out)
    assert counters["lost"] == 0  # no ring-full loss: the only loss is the release
    # Each RESUME came late (refused) or in time (none refused).
    assert counters["refused"] == (2 if resume == "late" else 0)
    (instance,) = accounting(second).values()
    assert instance["losses"] == [(1, released, released, None, None, "released")]
    assert instance["stored"] == list(range(released + 1, count + 1))
    assert_each_seq_once(instance, count)
    assert f"{released} records lost (seqs 1..{released}, released)" in (tmp_path / "b").read_text()
    assert integrity(second) == "ok"


def wait_for_line(log: Path, text: str, count: int) -> None:
    """Until the log holds text count times."""
    deadline = time.monotonic() + 30
    while log.read_text().count(text) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} did not appear {count} times in {log}")
        time.sleep(0.02)


def wait_for_daemon(db: Path, pid: int) -> None:
    """Until the ingest process pid runs (it publishes its state): a stop
    asked for before it set up would kill it."""
    deadline = time.monotonic() + 30
    while (current := read_status(database_url(str(db)))) is None or current.snapshot["pid"] != pid:
        if time.monotonic() > deadline:
            raise TimeoutError(f"ingest {pid} never published its state: {current}")
        time.sleep(0.05)


def gone(instance: str) -> Callable[[dict], bool]:
    """The source is disconnected, and the last instance it served is instance."""
    return lambda source: not source["connected"] and source["instance"] == instance


def wait_for_source(db: Path, condition: Callable[[dict], bool]) -> dict:
    """Until the running daemon's status shows its one source meeting condition."""
    deadline = time.monotonic() + 30
    current = None
    while time.monotonic() < deadline:
        current = read_status(database_url(str(db)))
        if current is not None and current.alive:
            (source,) = current.snapshot["sources"]
            if condition(source):
                return source
        time.sleep(0.05)
    raise TimeoutError(f"the ingest status never met the condition: {current}")

"""Many daemons, one PostgreSQL store: real simulators and real ingest
processes of two "hosts" write into one database at once, and a daemon
killed mid-stream resumes without storing anything twice."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.processes import kextlog, start, start_ingest, start_simulator

HOSTS = ("alpha", "beta")


def stored(url: str) -> dict[str, list[tuple]]:
    """Per host, its records as the log view shows them, in seq order."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found: dict[str, list[tuple]] = {}
            for host, *row in connection.execute(
                text(
                    "SELECT host, seq, level_number, pid, tid, process, message, instance"
                    " FROM log ORDER BY host, seq"
                )
            ):
                found.setdefault(host, []).append(tuple(row))
            return found
    finally:
        engine.dispose()


def scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def sent(record: Path) -> list[tuple]:
    """What the simulator sent (--record), as stored() shows it."""
    levels = {"trace": 1, "debug": 2, "info": 3, "warning": 4, "error": 5}
    rows = []
    for line in record.read_text().splitlines():
        item = json.loads(line)
        rows.append(
            (item["seq"], levels[item["level"]], item["pid"], item["tid"], item["process"],
             item["message"], item["instance"])
        )  # fmt: skip
    return rows


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_daemons_into_one_store(
    tmp_path: Path, postgres_database: Callable[[bool], str]
) -> None:
    # Not migrated yet: both daemons upgrade it as they start, at once.
    url = postgres_database(False)
    count = 60_000
    simulators, ingests = {}, {}
    for seed, host in enumerate(HOSTS, start=1):
        sock = tmp_path / f"{host}.sock"
        simulators[host] = start_simulator(
            sock, "--count", str(count), "--rate", "0",
            "--ring", str(count), "--seed", str(seed), "--record", str(tmp_path / f"{host}.jsonl"),
        )  # fmt: skip
    for host in HOSTS:
        ingests[host] = start(
            "ingest", "--source", f"unix:{tmp_path / f'{host}.sock'}", "--db", url,
            "--host", host, log=tmp_path / f"{host}.log",
        )  # fmt: skip
    counters = {}
    for host, simulator in simulators.items():
        out, err = simulator.communicate(timeout=300)  # it exits once all is acknowledged
        assert simulator.returncode == 0, err
        counters[host] = json.loads(out)
    for ingest in ingests.values():
        stop(ingest)

    found = stored(url)
    assert sorted(found) == sorted(HOSTS)
    for host in HOSTS:
        assert counters[host]["lost"] == 0 and counters[host]["last_seq"] == count
        assert found[host] == sent(tmp_path / f"{host}.jsonl")  # each record once, as sent
    assert scalar(url, "SELECT count(*) FROM losses") == 0
    assert scalar(url, "SELECT count(DISTINCT id) FROM instances") == 2
    assert scalar(url, "SELECT sum(high_water) FROM instances") == 2 * count
    # Every record was merged into the pid index by its own host's daemon.
    assert scalar(url, "SELECT count(*) FROM pid_index") == 2 * count
    assert scalar(url, "SELECT min(pid_indexed_seq) FROM instances") == count

    # The read side tells the hosts apart.
    hosts_sql = "SELECT host, count(*) AS n FROM log GROUP BY host ORDER BY host"
    by_host = kextlog("sql", "--db", url, "-o", "json", hosts_sql)
    assert by_host.returncode == 0, by_host.stderr
    assert [json.loads(line) for line in by_host.stdout.splitlines()] == [
        {"host": host, "n": count} for host in HOSTS
    ]
    newest = kextlog("query", "--db", url, "--host", "beta", "-n", "5", "-o", "json")
    assert newest.returncode == 0, newest.stderr
    shown = [json.loads(line) for line in newest.stdout.splitlines()]
    assert [item["seq"] for item in shown] == list(range(count - 4, count + 1))
    assert {item["instance"] for item in shown} == {counters["beta"]["instance"]}


def test_a_daemon_killed_mid_stream_stores_each_record_once(
    tmp_path: Path, postgres_database: Callable[[bool], str]
) -> None:
    url = postgres_database(True)
    count = 100_000
    sock, record = tmp_path / "sim.sock", tmp_path / "sent.jsonl"
    simulator = start_simulator(
        sock, "--count", str(count), "--rate", "20000",
        "--ring", str(count), "--record", str(record),
    )  # fmt: skip
    log = tmp_path / "ingest.log"
    ingest = start_ingest(sock, url, "--host", "h", log=log)
    wait_until(lambda: (scalar(url, "SELECT count(*) FROM records") or 0) >= 10_000)
    ingest.kill()  # SIGKILL: no flush, no ACK, maybe mid-COPY
    ingest.wait()
    ingest = start_ingest(sock, url, "--host", "h", log=log)
    out, err = simulator.communicate(timeout=300)
    assert simulator.returncode == 0, err
    stop(ingest)

    counters = json.loads(out)
    assert counters["lost"] == 0 and counters["connects"] == 2
    assert stored(url) == {"h": sent(record)}  # replayed records were not stored twice
    assert scalar(url, "SELECT count(*) FROM losses") == 0


def waiting_on_a_lock(url: str, statement: str) -> bool:
    """Whether a backend's statement starting with `statement` waits for a lock."""
    return bool(
        scalar(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            f" AND query LIKE '{statement}%'",
        )
    )


def test_a_deadlock_the_server_breaks_is_tried_again(
    tmp_path: Path, postgres_database: Callable[[bool], str]
) -> None:
    """Ingest's commit locks its counters, then its instance; a transaction
    that takes them the other way round deadlocks with it.  The server
    breaks the deadlock by rolling ingest's commit back: ingest tries the
    batch again and acknowledges every record once."""
    url = postgres_database(True)
    count, sock = 20_000, tmp_path / "sim.sock"
    simulator = start_simulator(sock, "--count", str(count), "--rate", "2000")
    ingest = start_ingest(sock, url, log=tmp_path / "ingest.log")
    other = create_engine(url)
    try:
        wait_until(lambda: (scalar(url, "SELECT max(high_water) FROM instances") or 0) > 0)
        instance = scalar(url, "SELECT id FROM instances")
        with other.connect() as connection:
            # This side waits longest, so the server's check ends ingest's side.
            connection.execute(text("SET deadlock_timeout = '10min'"))
            connection.execute(
                text("UPDATE instances SET last_seen_ns = last_seen_ns WHERE id = :id"),
                {"id": instance},
            )
            wait_until(lambda: waiting_on_a_lock(url, "UPDATE instances SET last_seen_ns"))
            minute = time.time_ns() // 60_000_000_000
            # Every bucket ingest's commit may hold: this minute's and the last one's.
            connection.execute(
                text(
                    "INSERT INTO record_counts (minute, level, instance_id, count)"
                    " VALUES (:minute, :level, :id, 0) ON CONFLICT (minute, level, instance_id)"
                    " DO UPDATE SET count = record_counts.count"
                ),
                [
                    {"minute": when, "level": level, "id": instance}
                    for when in (minute - 1, minute, minute + 1)
                    for level in range(1, 6)
                ],
            )
            connection.rollback()
        out, _ = simulator.communicate(timeout=300)  # ends once all is acknowledged
        assert json.loads(out)["last_seq"] == count
    finally:
        other.dispose()
        if simulator.poll() is None:
            simulator.kill()
            simulator.wait()
        stop(ingest)
    log = (tmp_path / "ingest.log").read_text()
    assert "deadlock" in log and "retrying" in log, log
    assert scalar(url, "SELECT count(DISTINCT seq) FROM log") == count
    assert scalar(url, "SELECT count(*) FROM log") == count
    assert scalar(url, "SELECT sum(count) FROM record_counts") == count


def test_prune_locks_the_counters_before_the_instance_as_ingest_does(
    tmp_path: Path, postgres_database: Callable[[bool], str]
) -> None:
    """A prune waiting for a counter row holds no lock on its instance yet:
    ingest's commits take them in that order, so the two cannot deadlock."""
    url = postgres_database(True)
    sock = tmp_path / "sim.sock"
    simulator = start_simulator(sock, "--count", "5000", "--rate", "0")
    ingest = start_ingest(sock, url, log=tmp_path / "ingest.log")
    simulator.communicate(timeout=300)
    stop(ingest)
    instance = scalar(url, "SELECT id FROM instances")
    holder, probe = create_engine(url), create_engine(url)
    try:
        with holder.connect() as connection:
            connection.execute(text("SELECT 1 FROM record_counts FOR UPDATE"))
            prune = start("prune", "--older-than", "0s", "--db", url)
            wait_until(lambda: waiting_on_a_lock(url, "INSERT INTO record_counts"))
            with probe.connect() as other:
                free = other.execute(
                    text("SELECT id FROM instances WHERE id = :id FOR UPDATE SKIP LOCKED"),
                    {"id": instance},
                ).all()
                other.rollback()
            connection.rollback()
        assert prune.wait(timeout=60) == 0
    finally:
        holder.dispose()
        probe.dispose()
    assert free == [(instance,)]  # not held by the waiting prune
    assert scalar(url, "SELECT count(*) FROM log") == 0
    assert (scalar(url, "SELECT count(*) FROM record_counts")) == 0

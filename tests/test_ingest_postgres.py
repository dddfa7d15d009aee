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

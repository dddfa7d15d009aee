"""The counters: records per (minute, level, instance) in record_counts and
per (pid, process, instance) in pid_counts, which ingest and prune keep in
the transactions that write and delete the records, checked against a
count of the records after each way records come and go, on both back
ends."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kextlog_store.ingest.pipeline import Ingest, IngestOptions
from kextlog_store.sources import parse_source
from kextlog_store.store import schema
from kextlog_store.store.engine import write_engine
from kextlog_store.store.retention import RetentionPolicy
from kextlog_store.store.writer import Writer
from tests.conftest import Kextlog, PopulatedStore, wait_until
from tests.processes import start_ingest, start_simulator

BOTH_BACKENDS = True

# Each counter table, and the same buckets counted from the records.
COUNTERS = {
    "record_counts": (
        "SELECT minute, level, instance_id, count FROM record_counts",
        f"SELECT {schema.minute_sql('time_ns')}, level, id >> {schema.SEQ_BITS}, count(*)"
        " FROM records GROUP BY 1, 2, 3",
    ),
    "pid_counts": (
        "SELECT pid, process, instance_id, count FROM pid_counts",
        f"SELECT pid, process, id >> {schema.SEQ_BITS}, count(*) FROM records GROUP BY 1, 2, 3",
    ),
}

Buckets = dict[tuple, int]


def buckets(url: str) -> dict[str, tuple[Buckets, Buckets]]:
    """Each counter table's buckets, and the records counted by the same
    buckets, in one snapshot."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            else:
                connection.exec_driver_sql("BEGIN")  # pysqlite would not, for reads
            return {
                table: tuple(  # type: ignore[misc]
                    {tuple(row[:-1]): int(row[-1]) for row in connection.execute(text(sql))}
                    for sql in (kept, counted)
                )
                for table, (kept, counted) in COUNTERS.items()
            }
    finally:
        engine.dispose()


def assert_true_counters(url: str) -> int:
    """Both tables of counters equal a count of the records, and none is
    left at 0; returns how many records."""
    tables = buckets(url)
    for kept, counted in tables.values():
        assert kept == counted
        assert all(count > 0 for count in kept.values())
    return sum(tables["record_counts"][1].values())


def ingested(url: str, tmp_path: Path, count: int) -> None:
    """count records of the simulator, stored by `kextlog ingest`."""
    sock = tmp_path / "sim.sock"
    simulator = start_simulator(sock, "--rate", "0", "--count", str(count))
    ingest = start_ingest(sock, url, log=tmp_path / "ingest.log")
    try:
        out, _ = simulator.communicate(timeout=300)  # ends once all is acknowledged
        assert json.loads(out)["last_seq"] == count
    finally:
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(timeout=60) == 0


def test_ingest_counts_what_it_stores(store_url: str, tmp_path: Path) -> None:
    ingested(store_url, tmp_path, 20_000)
    assert assert_true_counters(store_url) == 20_000


def test_a_process_name_with_nul_is_counted_as_stored(store_url: str) -> None:
    """PostgreSQL's text holds no NUL: the writer stores U+FFFD for it, and
    counts the name as stored."""
    writer = Writer(write_engine(store_url), host="test-host")
    state = writer.register(
        "ab" * 16, first_seq=1, source="unix:/s", name="sim", boot_id="b",
        producer_version="1", now_ns=0,
    )  # fmt: skip
    rows = [
        (seq, 10**18 + seq, 0, 3, 0, 7, 7, "a\x00b" if seq % 2 else "ab", "m") for seq in (1, 2, 3)
    ]
    state.high_water = 3
    try:
        writer.commit({state.id: rows}, [], [state], 0)
    finally:
        writer.engine.dispose()
    assert assert_true_counters(store_url) == 3
    assert len(buckets(store_url)["pid_counts"][0]) == 2


@pytest.mark.parametrize(
    "prune",
    [
        ["--older-than", "1h"],
        ["--older-than", "30m", "--level", "trace..info"],
        ["--older-than", "20m", "--level", "error"],
    ],
)
def test_prune_subtracts_what_it_removes(
    kextlog: Kextlog, populated: PopulatedStore, prune: list[str]
) -> None:
    before = assert_true_counters(populated.url)
    result = kextlog("prune", *prune)
    assert result.returncode == 0, result.stderr
    after = assert_true_counters(populated.url)  # emptied buckets went
    assert 0 < after < before


@pytest.mark.sqlite_only
def test_a_size_cap_subtracts_what_it_removes(
    kextlog: Kextlog, store_url: str, db_path: Path, tmp_path: Path
) -> None:
    ingested(store_url, tmp_path, 20_000)
    result = kextlog("prune", "--max-size", str(db_path.stat().st_size // 2))
    assert result.returncode == 0, result.stderr
    assert 0 < assert_true_counters(store_url) < 20_000


def test_retention_while_ingesting_keeps_them_true(store_url: str, tmp_path: Path) -> None:
    """The daemon's own retention deletes while it commits: each delete
    subtracts in its transaction."""
    sock = tmp_path / "sim.sock"
    simulator = start_simulator(sock, "--rate", "10000", "--count", "20000")
    options = IngestOptions(
        sources=[parse_source(f"unix:{sock}")],
        retention=RetentionPolicy.parse("trace..debug=0s"),  # gone as soon as seen
        retention_seconds=0.2,
    )
    stop = threading.Event()
    daemon = Ingest(Writer(write_engine(store_url)), options, stop)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert simulator.wait(timeout=600) == 0  # every record acknowledged meanwhile
        wait_until(lambda: not debugging(store_url), "a round of retention after the last commit")
    finally:
        stop.set()
        runner.join(timeout=30)
        if simulator.poll() is None:  # a failure above left it serving
            simulator.kill()
            simulator.wait()
    assert 0 < assert_true_counters(store_url) < 20_000


def debugging(url: str) -> bool:
    """Whether trace or debug records are stored."""
    return any(level <= 2 for _, level, _ in buckets(url)["record_counts"][1])


def test_a_killed_ingest_leaves_them_true(store_url: str, tmp_path: Path) -> None:
    """SIGKILL lands anywhere, within a commit too: the counters and the
    records are one transaction, so they agree after every kill."""
    sock = tmp_path / "sim.sock"
    # Generating for as long as the test runs: each new daemon has records
    # to commit however long the starts take on a loaded machine.
    simulator = start_simulator(sock, "--rate", "20000", "--count", "0")
    stored = 0
    try:
        for kill in range(4):
            ingest = start_ingest(sock, store_url, log=tmp_path / f"ingest-{kill}.log")
            wait_until(lambda before=stored: assert_true_counters(store_url) > before, "a commit")
            ingest.kill()
            ingest.wait()
            stored = assert_true_counters(store_url)
    finally:
        simulator.kill()
        simulator.wait()
    assert stored > 0

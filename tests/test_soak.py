"""Readers beside the writer, for a while: the real simulator at a steady
rate into real ingest while `kextlog query`, `kextlog sql` (one of them
long-running), `kextlog stats`, `kextlog status`, maintenance (`prune`,
`db upgrade`) and a `kextlog query --follow` run in parallel, again and
again.  Readers never fail and never make the writer fail (WAL, busy
timeouts), every record is stored once, the follower sees each once and in
order, and ingest's memory stays flat."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Callable
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
from tests.test_delivery import accounting, integrity

pytestmark = pytest.mark.slow

RATE, SECONDS = 10_000, 24
COUNT = RATE * SECONDS
# A statement that reads for seconds, holding its snapshot all the while.
LONG_SQL = (
    "SELECT (SELECT count(*) FROM records) AS n, (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL"
    " SELECT x + 1 FROM c WHERE x < 5000000) SELECT count(*) FROM c) AS spun"
)
# RSS is sampled over the run's second half, once the writer's page cache
# (16 MB) is full: the store then holds 120,000 records, about 24 MB; a
# sample each time ingest has committed another SAMPLE_EVERY records (so the
# number of samples does not depend on how fast a loaded machine runs).  A pid
# merge lifts RSS by some 10 MB, and the allocator may keep that for a while,
# so the floors of the two quarters are compared, with room for one merge's
# worth.  A leak of 200 bytes per record would add 12 MB between them; the
# benchmark's peak RSS over 4,500,000 records (<= 150 MB) bounds smaller ones.
RSS_TOLERANCE_KB = 12 * 1024
SAMPLES = 24
SAMPLE_EVERY = COUNT // 2 // SAMPLES


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def check_query(db: Path) -> None:
    result = kextlog("query", "--db", str(db), "-n", "50", "-o", "json")
    assert result.returncode == 0, result.stderr
    seqs = [json.loads(line)["seq"] for line in result.stdout.splitlines()]
    assert len(seqs) == 50 and seqs == sorted(seqs)


def check_filtered_query(db: Path) -> None:
    result = kextlog("query", "--db", str(db), "--level", "error", "--since", "1m", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert all(json.loads(line)["level"] == "error" for line in result.stdout.splitlines())


def check_sql(db: Path) -> None:
    result = kextlog("sql", "--db", str(db), "-o", "json", "SELECT count(*) AS n FROM log")
    assert result.returncode == 0, result.stderr
    assert 0 < json.loads(result.stdout)["n"] <= COUNT


def check_long_sql(db: Path) -> None:
    result = kextlog("sql", "--db", str(db), "--timeout", "120", "-o", "json", LONG_SQL)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spun"] == 5_000_000


def check_stats(db: Path) -> None:
    result = kextlog("stats", "--db", str(db), "-o", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("{")


def check_status(db: Path) -> None:
    result = kextlog("status", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ingest: running")


def check_maintenance(db: Path) -> None:
    pruned = kextlog("prune", "--db", str(db), "--older-than", "1d")  # nothing is that old
    assert pruned.returncode == 0, pruned.stderr
    upgraded = kextlog("db", "upgrade", "--db", str(db))  # at the head already
    assert upgraded.returncode == 0, upgraded.stderr


def committed(db: Path) -> int:
    """The running ingest's committed seq of its one source (0: none yet)."""
    status = read_status(database_url(str(db)))
    if status is None or not status.alive:
        return 0
    (source,) = status.snapshot["sources"]
    return source["committed_seq"] or 0


def repeat(check: Callable[[Path], None], db: Path, done: threading.Event, runs: list) -> None:
    while not done.is_set():
        check(db)
        runs.append(check.__name__)


def test_readers_and_maintenance_beside_a_steady_writer(tmp_path: Path) -> None:
    sock, db, ingest_log = tmp_path / "sim.sock", tmp_path / "k.db", tmp_path / "ingest.log"
    simulator = start_simulator(
        sock, "--rate", str(RATE), "--count", str(COUNT),
        "--ring", str(COUNT), log=tmp_path / "sim.log",
    )  # fmt: skip
    ingest = start_ingest(sock, db, log=ingest_log)
    wait_until(lambda: committed(db) >= 1_000, "ingest to commit 1,000 records")
    followed = tmp_path / "follow.jsonl"
    with followed.open("w") as output:
        follower = subprocess.Popen(
            [*COMMAND, "query", "--db", str(db), "--follow", "--since", "@0", "-o", "json"],
            stdout=output,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
    done, runs, failures = threading.Event(), [], []
    checks = (check_query, check_filtered_query, check_sql, check_long_sql, check_stats,
              check_status, check_maintenance)  # fmt: skip

    def guarded(check: Callable[[Path], None]) -> None:
        try:
            repeat(check, db, done, runs)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)
            done.set()

    readers = [threading.Thread(target=guarded, args=(check,)) for check in checks]
    for reader in readers:
        reader.start()

    def past(count: int) -> Callable[[], bool]:
        return lambda: committed(db) >= count or done.is_set()

    rss = []
    for sample in range(SAMPLES):
        milestone = COUNT // 2 + sample * SAMPLE_EVERY
        wait_until(past(milestone), f"{milestone:,} records committed")
        rss.append(rss_kb(ingest.pid))
    wait_until(lambda: simulator.poll() is not None or done.is_set(), "every record acknowledged")
    done.set()
    for reader in readers:
        reader.join(timeout=300)
    assert not failures, failures[0]
    assert set(runs) == {check.__name__ for check in checks}  # each ran, at least once
    out, _ = simulator.communicate(timeout=300)
    assert simulator.returncode == 0

    counters = json.loads(out)
    assert counters["last_seq"] == COUNT and counters["lost"] == 0
    (instance,) = accounting(db).values()
    assert instance["stored"] == list(range(1, COUNT + 1)) and instance["losses"] == []
    assert integrity(db) == "ok"
    log = ingest_log.read_text()
    for trouble in ("acknowledging nothing", "cannot write", "pid index:", "Traceback"):
        assert trouble not in log, log

    # The follower saw every record, once, in order.
    wait_until(lambda: followed.read_text().count("\n") >= COUNT, "the follower's last record")
    follower.send_signal(signal.SIGINT)
    _, follow_err = follower.communicate(timeout=120)
    assert follower.returncode == 130, follow_err  # Ctrl-C ends --follow
    seqs = [json.loads(line)["seq"] for line in followed.read_text().splitlines()]
    assert seqs == list(range(1, COUNT + 1))
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=120) == 0

    half = len(rss) // 2
    first, second = min(rss[:half]), min(rss[half:])
    assert second <= first + RSS_TOLERANCE_KB, (first, second, rss)

"""kextlog against journalctl on the same records: every figure a ratio of one run.

    python bench/versus_journal.py [--records N] [--repeats R]

One workload of N records (default 2,000,000) from kextlog's simulator goes
into a real `kextlog ingest` (a new SQLite store) and, converted to the
journal's export format, into systemd-journal-remote (a journal file).  The
simulator stamps records with the time it makes them, seconds apart at most,
so both stores then get the same spread-out times, a function of the seq: a
quarter of the records from 4 h to 90 min before the build, the rest in its
last 30 minutes (so `--since -1h` selects those while the bench runs).

Each read is then a whole command on both sides, output to /dev/null, run in
turns R times (default 5); the medians, their ratio and issue 16's target
are printed, with how many lines each side prints (they must agree; a run
whose counts differ says so and misses its target).  Commands without a
journalctl peer are compared with their target.  `make bench` (bench/run.py)
runs compare() into its own table.  systemd-journal-remote and journalctl come from
Debian's packages (`tests/install-packages.sh journal` installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from run import ROOT, Report, start, stop, wait_for

from kextlog_store.records import SEQ_BITS, SEQ_MASK

KEXTLOG_SCRIPT = Path(sys.executable).with_name("kextlog")
KEXTLOG = (
    [str(KEXTLOG_SCRIPT)]
    if KEXTLOG_SCRIPT.exists()
    else [sys.executable, "-m", "kextlog_store.cli"]
)
MINUTE_NS = 60 * 10**9
# Levels as syslog priorities, as the kmsg source maps them back (kmsg.LEVELS):
# err is the most severe that reads back as ERROR; trace has none below debug.
PRIORITY = {"error": 3, "warning": 4, "info": 6, "debug": 7, "trace": 7}


@dataclass(frozen=True)
class Pair:
    work: str  # as typed on both sides
    arguments: list[str]
    target: str  # "journalctl": at or below its time; "import": 0.7 x import sqlalchemy


PAIRS = [
    Pair("-g denied -o cat", ["-g", "denied", "-o", "cat"], "journalctl"),
    Pair("-o short -n 500000", ["-o", "short", "-n", "500000"], "journalctl"),
    Pair("-o json -n 200000", ["-o", "json", "-n", "200000"], "journalctl"),
    Pair("--since -1h -p err -o cat", ["--since", "-1h", "-p", "err", "-o", "cat"], "journalctl"),
    Pair("-p err -n 100", ["-p", "err", "-n", "100"], "import"),
]


@dataclass(frozen=True)
class Spread:
    """The times both stores get: seq (from 1) to nanoseconds, whole microseconds."""

    older: int  # records before the gap
    start_a: int
    step_a: int
    start_b: int
    step_b: int

    @classmethod
    def over(cls, records: int, end_ns: int) -> Spread:
        end_ns -= end_ns % 1000
        older = records // 4
        return cls(
            older,
            end_ns - 240 * MINUTE_NS,
            150 * MINUTE_NS // max(older, 1) // 1000 * 1000,
            end_ns - 30 * MINUTE_NS,
            30 * MINUTE_NS // max(records - older, 1) // 1000 * 1000,
        )

    def at(self, seq: int) -> int:
        if seq <= self.older:
            return self.start_a + (seq - 1) * self.step_a
        return self.start_b + (seq - self.older - 1) * self.step_b

    def sql(self, seq: str) -> str:
        """The same as an SQL expression of the column seq."""
        return (
            f"CASE WHEN {seq} <= {self.older} THEN {self.start_a} + ({seq} - 1) * {self.step_a}"
            f" ELSE {self.start_b} + ({seq} - {self.older} - 1) * {self.step_b} END"
        )


def journal_remote() -> str:
    for directory in ("/usr/lib/systemd", "/lib/systemd"):
        if Path(directory, "systemd-journal-remote").exists():
            return str(Path(directory, "systemd-journal-remote"))
    subprocess.run([ROOT / "tests" / "install-packages.sh", "journal"], check=True)
    if not shutil.which("journalctl"):
        sys.exit("versus_journal: journalctl is missing (apt-get install systemd)")
    for directory in ("/usr/lib/systemd", "/lib/systemd"):
        if Path(directory, "systemd-journal-remote").exists():
            return str(Path(directory, "systemd-journal-remote"))
    sys.exit(
        "versus_journal: systemd-journal-remote is missing (apt-get install systemd-journal-remote)"
    )


def build_kextlog(scratch: Path, records: int) -> tuple[Path, Path, float]:
    """The simulator's records through a real ingest: the store, the record file, seconds."""
    sock, db, log, sent = (scratch / name for name in ("sim.sock", "k.db", "log", "sent.jsonl"))
    budget = records / 10_000 + 600
    simulator = start(
        "simulate", "--socket", str(sock), "--rate", "0", "--count", str(records),
        "--ring", str(records), "--record", str(sent), stderr=log,
    )  # fmt: skip
    wait_for(log, r"simulate: generated", timeout=budget)
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), stderr=log)
    connected = wait_for(log, r"ingest: .* connected to", timeout=budget)
    out, _ = simulator.communicate(timeout=budget)  # exits once everything is acknowledged
    drained = time.monotonic()
    stop(ingest)
    counters = json.loads(out)
    if counters["lost"] or counters["acked"] != records:
        sys.exit(f"versus_journal: the simulator lost records: {out}")
    return db, sent, drained - connected


def respread(db: Path, spread: Spread) -> None:
    """Give the stored records (and the pid index) the spread's times, and
    count them again by their new minutes (record_counts, which stats reads)."""
    import sqlite3

    from kextlog_store.store.schema import minute_sql

    with sqlite3.connect(db, isolation_level=None) as connection:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(f"UPDATE records SET time_ns = {spread.sql('seq')}")
        connection.execute(f"UPDATE pid_index SET time_ns = {spread.sql(f'(id & {SEQ_MASK})')}")
        connection.execute("DELETE FROM record_counts")
        connection.execute(
            "INSERT INTO record_counts (minute, level, instance_id, count)"
            f" SELECT {minute_sql('time_ns')}, level, id >> {SEQ_BITS}, count(*) FROM records"
            " GROUP BY 1, 2, 3"
        )
        connection.execute("COMMIT")
        # Packed again as ingest's appends leave them.
        connection.execute("REINDEX ix_records_time_ns")
        connection.execute("REINDEX ix_records_level_time_ns")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def export(sent: Path, spread: Spread) -> Iterator[bytes]:
    """The record file in the journal's export format, in chunks."""
    chunk: list[bytes] = []
    with sent.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            realtime = spread.at(record["seq"]) // 1000
            fields = {
                "__REALTIME_TIMESTAMP": str(realtime),
                "__MONOTONIC_TIMESTAMP": str(realtime - spread.start_a // 1000 + 1),
                "_BOOT_ID": record["instance"],
                "PRIORITY": str(PRIORITY[record["level"]]),
                "_PID": str(record["pid"]),
                "_COMM": record["process"],
                "SYSLOG_IDENTIFIER": record["process"],
                "MESSAGE": record["message"],
            }
            chunk.append(b"".join(_field(name, value) for name, value in fields.items()) + b"\n")
            if len(chunk) == 10_000:
                yield b"".join(chunk)
                chunk = []
    yield b"".join(chunk)


def _field(name: str, value: str) -> bytes:
    data = value.encode("utf-8", "surrogateescape")
    if b"\n" in data:  # the binary form: a little-endian 64-bit length first
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def build_journal(scratch: Path, sent: Path, spread: Spread, records: int) -> tuple[Path, float]:
    directory = scratch / "journal"
    directory.mkdir()
    log = scratch / "journal-remote.log"
    began = time.monotonic()
    with log.open("w") as errors:
        remote = subprocess.Popen(
            [journal_remote(), f"--output={directory / 'kextlog.journal'}", "-"],
            stdin=subprocess.PIPE,
            stderr=errors,
        )
        assert remote.stdin is not None
        for chunk in export(sent, spread):
            remote.stdin.write(chunk)
        remote.stdin.close()
        remote.wait()
    seconds = time.monotonic() - began
    written = re.search(r"after writing (\d+) entries", log.read_text())
    if remote.returncode != 0 or written is None or int(written[1]) != records:
        sys.exit(f"versus_journal: systemd-journal-remote: {log.read_text().strip()}")
    return directory, seconds


def disk_mb(*paths: Path) -> float:
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return sum(f.stat().st_blocks * 512 for f in files) / 1e6


def lines_of(command: list[str]) -> int:
    return subprocess.run(command, check=True, capture_output=True).stdout.count(b"\n")


def medians(commands: list[list[str]], repeats: int) -> list[float]:
    """Median wall seconds of each command, output to /dev/null, the commands in turns."""
    times: list[list[float]] = [[] for _ in commands]
    for turn in range(repeats):
        order = range(len(commands)) if turn % 2 == 0 else reversed(range(len(commands)))
        for index in order:
            began = time.perf_counter()
            subprocess.run(commands[index], check=True, stdout=subprocess.DEVNULL)
            times[index].append(time.perf_counter() - began)
    return [statistics.median(each) for each in times]


def shown(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def compare(report: Report, scratch: Path, records: int, repeats: int) -> None:
    """Both stores built from one workload in scratch, each work timed on
    both sides: its figures added to report (bench/run.py's table)."""
    journal_remote()  # installed before anything is built
    scratch.mkdir(exist_ok=True)
    db, sent, ingest_seconds = build_kextlog(scratch, records)
    spread = Spread.over(records, time.time_ns())
    respread(db, spread)
    journal, remote_seconds = build_journal(scratch, sent, spread, records)
    sent.unlink()
    zone = os.environ.get("TZ", "the system's")
    report.add(
        f"{records:,} records, as journalctl reads: kextlog ingest",
        ingest_seconds,
        "s",
        note=f"{disk_mb(db):,.0f} MB",
    )
    report.add(
        "the same into systemd-journal-remote",
        remote_seconds,
        "s",
        note=f"{disk_mb(journal):,.0f} MB; reads below: medians of {repeats}, TZ {zone}",
    )
    kextlog = [*KEXTLOG, "query", "--db", str(db), "--no-pager"]
    journalctl = ["journalctl", "-D", str(journal), "--no-pager", "-q"]
    (imported,) = medians([[sys.executable, "-c", "import sqlalchemy"]], repeats)
    for pair in PAIRS:
        ours, theirs = [*kextlog, *pair.arguments], [*journalctl, *pair.arguments]
        counts = lines_of(ours), lines_of(theirs)
        mine, peer = medians([ours, theirs], repeats)
        lines = f"{counts[0]:,} lines" if counts[0] == counts[1] else (
            f"LINES DIFFER: {counts[0]:,} != {counts[1]:,}"
        )  # fmt: skip
        note = f"kextlog {shown(mine)}, journalctl {shown(peer)}, {lines}"
        agree = counts[0] == counts[1]
        if pair.target == "journalctl":
            report.add(
                f"{pair.work}: kextlog / journalctl",
                mine / peer,
                "x",
                "<= 1.0",
                lambda ratio, agree=agree: agree and ratio <= 1.0,
                note,
            )
        else:
            report.add(
                f"{pair.work}: kextlog / import sqlalchemy",
                mine / imported,
                "x",
                "<= 0.7",
                lambda ratio, agree=agree: agree and ratio <= 0.7,
                f"import sqlalchemy {shown(imported)}; {note}",
            )
    (stats,) = medians([[*KEXTLOG, "stats", "--db", str(db)]], repeats)
    report.add(
        "kextlog stats on the same store: whole command",
        stats * 1000,
        "ms",
        f"<= {(imported + 0.3) * 1000:.0f} ms",
        lambda value: value <= (imported + 0.3) * 1000,
        "import sqlalchemy + 300 ms",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000, help="workload size")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command")
    args = parser.parse_args()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="kextlog-versus-journal-") as name:
        compare(report, Path(name), args.records, args.repeats)


if __name__ == "__main__":
    main()

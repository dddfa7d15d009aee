"""`make bench`: every figure of docs/benchmarks.md, measured in one run on
this machine, printed as a table next to its target.

    python bench/run.py [--quick] [--json FILE]

Everything runs as real processes: the simulator (the kext's C core), the
ingest daemon, the `kextlog` command.  Ratios compare figures of the same run.
--quick shrinks every size (a smoke run; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
KEXTLOG = [sys.executable, "-m", "kextlog_store.cli"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sizes:
    ingest_records: int  # drained by ingest: >= 30 s of it
    loss_seconds: float  # at 100,000 records/s
    latency_seconds: float  # at 50,000 records/s
    store_records: int  # the query benchmark's store, over 7 days
    limit_records: int  # the single-writer limit's run
    repeats: int  # runs of each timed command (the median is reported)
    journal_records: int  # the workload read by both kextlog and journalctl


FULL = Sizes(4_500_000, 60, 30, 10_000_000, 2_000_000, 5, 2_000_000)
QUICK = Sizes(60_000, 2, 2, 100_000, 50_000, 2, 20_000)


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)

    def add(
        self,
        name: str,
        value: float | None,
        unit: str,
        target: str = "",
        check: Callable[[float], bool] | None = None,
        note: str = "",
    ) -> float | None:
        met = None if check is None or value is None else check(value)
        self.figures.append(Figure(name, value, unit, target, met, note))
        print(_line(self.figures[-1]), flush=True)
        return value


def _line(figure: Figure) -> str:
    value = "-" if figure.value is None else f"{figure.value:,.{_decimals(figure.value)}f}"
    verdict = {True: "met", False: "MISSED", None: ""}[figure.met]
    columns = (figure.name, value, figure.unit, figure.target, verdict, figure.note)
    return "{:<52} {:>12} {:<10} {:<16} {:<7} {}".format(*columns)


def _decimals(value: float) -> int:
    return 0 if abs(value) >= 100 else 2 if abs(value) < 10 else 1


# -- processes ---------------------------------------------------------------


def start(*args: str, stderr: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*KEXTLOG, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr.open("a"),
        text=True,
    )


def wait_for(log: Path, pattern: str, timeout: float = 120) -> float:
    """Until a line matching pattern is in log; returns when it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and re.search(pattern, log.read_text()):
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError(f"{pattern!r} never appeared in {log}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def stop(process: subprocess.Popen[str]) -> resource.struct_rusage:
    """SIGTERM, then the process's resource usage (peak RSS among it)."""
    process.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{process.args} exited {process.returncode}")
    return usage


def median_command(command: list[str], repeats: int) -> tuple[float, int]:
    """The median wall time of the command, and how many lines it printed."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        output = subprocess.run(command, check=True, capture_output=True).stdout
        times.append(time.perf_counter() - began)
    return statistics.median(times), output.count(b"\n")


def median_seconds(command: list[str], repeats: int) -> float:
    return median_command(command, repeats)[0]


# -- the figures -------------------------------------------------------------


def sustained_ingest(scratch: Path, socket_type: str, records: int, url: str | None = None) -> dict:
    """The simulator makes `records` records into a ring that holds them all,
    then ingest drains them as fast as it can: records/s, CPU per record and
    peak RSS of the daemon, with every query index in place.  Into a new
    SQLite file, or into the database at url."""
    run = scratch / f"ingest-{socket_type}{'-url' if url else ''}"
    run.mkdir()
    sock, db, log = run / "sim.sock", run / "k.db", run / "log"
    target = url or str(db)
    simulator = start(
        "simulate", "--socket", str(sock), "--socket-type", socket_type, "--rate", "0",
        "--count", str(records), "--ring", str(records), stderr=log,
    )  # fmt: skip
    wait_for(log, r"simulate: generated")
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", target, stderr=log)
    connected = wait_for(log, r"ingest: .* connected to")
    cpu_before = cpu_seconds(ingest.pid)
    out, _ = simulator.communicate(timeout=records / 10_000 + 300)  # exits once all is acked
    drained = time.monotonic()
    cpu = cpu_seconds(ingest.pid) - cpu_before
    usage = stop(ingest)
    counters = json.loads(out)
    seconds = drained - connected
    return {
        "records": records,
        "lost": counters["lost"],
        "seconds": seconds,
        "per_second": records / seconds,
        "cpu_us_per_record": cpu / records * 1e6,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "db": db,
    }


def postgresql_ingest(report: Report, scratch: Path, records: int, sqlite_rate: float) -> None:
    """The same workload as sustained_ingest, into PostgreSQL: a server of
    our own (tests/postgres_server.py) with PostgreSQL's default durability
    (fsync, synchronous commits), on its Unix socket."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import create_engine

    from tests import postgres_server

    label = "sustained ingest, PostgreSQL, seqpacket"
    try:
        with postgres_server.running(durable=True) as server:
            admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.exec_driver_sql("CREATE DATABASE kextlog_bench")
            admin.dispose()
            drained = sustained_ingest(
                scratch, "seqpacket", records, url=server.url("kextlog_bench")
            )
    except postgres_server.PostgresUnavailable as exc:
        report.add(label, None, "records/s", note=f"not measured: {exc}")
        return
    rate = report.add(
        label,
        drained["per_second"],
        "records/s",
        note=f"{drained['records']:,} records in {drained['seconds']:.1f} s, COPY",
    )
    report.add(
        f"{label}: / SQLite's",
        rate / sqlite_rate * 100 if rate and sqlite_rate else None,
        "%",
        note="the seqpacket figure of this run",
    )
    report.add(
        f"{label}: CPU per record",
        drained["cpu_us_per_record"],
        "us",
        note="ingest's (the server's not counted)",
    )


def single_writer_limit(scratch: Path, records: int) -> float:
    db = scratch / "limit.db"
    subprocess.run([*KEXTLOG, "db", "upgrade", "--db", str(db)], check=True, capture_output=True)
    result = subprocess.run(
        [str(OUT / "single_writer"), str(db), str(records)], check=True, capture_output=True
    )
    return json.loads(result.stdout)["per_second"]


def offered_load(scratch: Path, rate: int, seconds: float) -> dict:
    """The simulator at a steady rate with ingest already running: what was
    lost, and the kernel-to-commit latency ingest measured over the run."""
    run = scratch / f"load-{rate}"
    run.mkdir()
    sock, db, log = run / "sim.sock", run / "k.db", run / "log"
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), stderr=log)
    wait_for(log, r"ingest: .*retrying")  # up, and waiting for its producer
    simulator = start(
        "simulate", "--socket", str(sock), "--rate", str(rate), "--duration", str(seconds),
        stderr=log,
    )  # fmt: skip
    out, _ = simulator.communicate(timeout=seconds * 5 + 120)
    stop(ingest)
    counters = json.loads(out)
    latency = json.loads(Path(f"{db}-ingest.json").read_text())["latency_ms"]["run"]
    return {"generated": counters["generated"], "lost": counters["lost"], **latency}


# (name, the command's options, the same as a RecordFilter, target in ms)
QUERIES = [
    (
        "query --level error --since 1h",
        ["--level", "error", "--since", "1h"],
        "levels=(Level.ERROR, Level.ERROR), since_ns=parse_time('1h')",
        50,
    ),
    (
        "query --pid N --since 7d -n 100",
        ["--pid", "{pid}", "--since", "7d", "-n", "100"],
        "pids=({pid},), since_ns=parse_time('7d'), lines=100",
        100,
    ),
    (
        "query --grep WORD --since 1d",
        ["--grep", "denied", "--since", "1d"],
        "grep='denied', since_ns=parse_time('1d')",
        None,
    ),
]
COUNT_BY_LEVEL = "SELECT level, count(*) FROM records GROUP BY level"


def query_figures(report: Report, scratch: Path, sizes: Sizes) -> Path:
    """The query figures over a store of sizes.store_records; the store."""
    db = scratch / "store.db"
    subprocess.run([*KEXTLOG, "db", "upgrade", "--db", str(db)], check=True, capture_output=True)
    built = subprocess.run(
        [str(OUT / "single_writer"), str(db), str(sizes.store_records), "7"],
        check=True,
        capture_output=True,
    )
    report.add(
        f"store for the queries: {sizes.store_records:,} records over 7 days",
        json.loads(built.stdout)["seconds"],
        "s to build",
    )
    import_seconds = median_seconds([sys.executable, "-c", "import sqlalchemy"], sizes.repeats)
    report.add("python -c 'import sqlalchemy'", import_seconds * 1000, "ms")
    # A pid of median activity: half the records come from busier ones.
    pid = _median_pid(db)
    for name, arguments, record_filter, target_ms in QUERIES:
        arguments = [argument.format(pid=pid) for argument in arguments]
        seconds = _query_seconds(db, record_filter.format(pid=pid), sizes.repeats)
        report.add(
            f"{name}: query time",
            seconds * 1000,
            "ms",
            f"<= {target_ms} ms" if target_ms else "",
            (lambda value, target=target_ms: value <= target) if target_ms else None,
        )
        command, lines = median_command(
            [*KEXTLOG, "query", "--db", str(db), "--no-pager", *arguments], sizes.repeats
        )
        # The start-up target (what the command costs beyond the import) is
        # for the indexed queries; grep's time is its scan and its output.
        startup = target_ms is not None
        report.add(
            f"{name}: whole command",
            command * 1000,
            "ms",
            "import + 250 ms" if startup else "",
            (lambda value: value <= import_seconds * 1000 + 250) if startup else None,
            f"{lines:,} lines printed",
        )
    report.add(
        "sql count by level: whole command",
        median_seconds([*KEXTLOG, "sql", "--db", str(db), COUNT_BY_LEVEL], sizes.repeats) * 1000,
        "ms",
    )
    stats_figure(report, db, import_seconds, sizes.repeats)
    return db


def stats_figure(report: Report, db: Path, import_seconds: float, repeats: int) -> None:
    """`kextlog stats` of the whole store: levels, the rate chart and the
    instances' stored records add up record_counts, the table per process
    pid_counts (the store's builder, single_writer, keeps both as ingest
    does)."""
    report.add(
        "stats of the whole store: whole command",
        median_seconds([*KEXTLOG, "stats", "--db", str(db)], repeats) * 1000,
        "ms",
        "import + 300 ms",
        lambda value: value <= import_seconds * 1000 + 300,
    )


def _median_pid(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as connection:
        counts = connection.execute(
            "SELECT pid FROM records GROUP BY pid ORDER BY count(*)"
        ).fetchall()
    return counts[len(counts) // 2][0]


def _query_seconds(db: Path, record_filter: str, repeats: int) -> float:
    """The library's time for the query alone (no start-up), in a fresh process."""
    program = (
        "import sys, time\n"
        "from contextlib import closing\n"
        "from kextlog_store import query\n"
        "from kextlog_store.levels import Level\n"
        "from kextlog_store.store.engine import reader\n"
        "from kextlog_store.store.location import database_url\n"
        "from kextlog_store.timespec import parse_time\n"
        "store = reader(database_url(sys.argv[1]))\n"
        f"record_filter = query.RecordFilter({record_filter})\n"
        "times = []\n"
        f"for _ in range({repeats}):\n"
        "    began = time.perf_counter()\n"
        "    with closing(query.entries(store, record_filter)) as entries:\n"
        "        count = sum(1 for _ in entries)\n"
        "    times.append(time.perf_counter() - began)\n"
        "print(sorted(times)[len(times) // 2], count)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(db)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(result.stdout.split()[0])


def bytes_per_record(report: Report, db: Path, records: int) -> None:
    """On disk (after a checkpoint) against the records' short output lines."""
    import sqlite3

    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    on_disk = db.stat().st_size / records
    sample = 100_000
    lines = subprocess.run(
        [*KEXTLOG, "query", "--db", str(db), "-n", str(sample), "--no-pager", "-o", "short"],
        check=True,
        capture_output=True,
    ).stdout
    text = len(lines) / max(lines.count(b"\n"), 1)
    report.add("bytes per record on disk", on_disk, "B")
    report.add("bytes per record as short text", text, "B")
    report.add("disk / text", on_disk / text, "x", "<= 1.5x", lambda value: value <= 1.5)


def log_printf_cost(report: Report, calls: int) -> None:
    result = json.loads(
        subprocess.run(
            [str(OUT / "log_printf"), str(calls)], check=True, capture_output=True
        ).stdout
    )
    report.add("core log_printf per call", result["log_printf_ns"], "ns")
    report.add("bare vsnprintf of the same message", result["vsnprintf_ns"], "ns")
    report.add("log_printf / vsnprintf", result["ratio"], "x")


def lock_hold(report: Report, records: int) -> None:
    """Medians of 5 replays of a full ring, each figure the replay's longest:
    CPU time under the lock (the work a hold does), the same in wall time
    (preemption of the holder included), and a logging thread's wait."""
    result = json.loads(
        subprocess.run(
            [str(OUT / "lock_hold"), str(records)], check=True, capture_output=True
        ).stdout
    )
    note = f"{records:,}-record ring replayed in {result['replay_ms']:,.0f} ms"
    report.add(
        "longest hold of the core's lock in a replay: CPU",
        result["longest_work_us"],
        "us",
        "<= 500 us",
        lambda value: value <= 500,
        note,
    )
    report.add("longest hold of the core's lock in a replay: wall", result["longest_hold_us"], "us")
    report.add("longest wait of a logging thread then", result["longest_logger_wait_us"], "us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    report = Report()
    print(f"{'figure':<52} {'value':>12} {'unit':<10} {'target':<16} verdict", flush=True)
    with tempfile.TemporaryDirectory(prefix="kextlog-bench-") as directory:
        scratch = Path(directory)
        limit = report.add(
            "single-writer limit (C, libsqlite3, same schema)",
            single_writer_limit(scratch, sizes.limit_records),
            "records/s",
        )
        for socket_type in ("seqpacket", "stream"):
            drained = sustained_ingest(scratch, socket_type, sizes.ingest_records)
            label = f"sustained ingest, {socket_type}"
            rate = report.add(
                label,
                drained["per_second"],
                "records/s",
                ">= 150,000",
                lambda value: value >= 150_000,
                f"{drained['records']:,} records in {drained['seconds']:.1f} s",
            )
            report.add(
                f"{label}: / single-writer limit",
                rate / limit * 100 if rate and limit else None,
                "%",
                ">= 60%",
                lambda value: value >= 60,
            )
            report.add(f"{label}: CPU per record", drained["cpu_us_per_record"], "us")
            report.add(
                f"{label}: ingest peak RSS",
                drained["peak_rss_mb"],
                "MB",
                "<= 150 MB",
                lambda value: value <= 150,
            )
            if socket_type == "seqpacket":
                bytes_per_record(report, drained["db"], drained["records"])
                sqlite_rate = rate or 0.0
        postgresql_ingest(report, scratch, sizes.ingest_records, sqlite_rate)
        loss = offered_load(scratch, 100_000, sizes.loss_seconds)
        report.add(
            f"lost at 100,000 records/s for {sizes.loss_seconds:g} s",
            loss["lost"],
            "records",
            "0",
            lambda value: value == 0,
            f"of {loss['generated']:,}",
        )
        latency = offered_load(scratch, 50_000, sizes.latency_seconds)
        report.add("kernel-to-commit p50 at 50,000/s", latency["p50"], "ms")
        report.add(
            "kernel-to-commit p99 at 50,000/s",
            latency["p99"],
            "ms",
            "<= 250 ms",
            lambda value: value <= 250,
            f"lost {latency['lost']:,} of {latency['generated']:,}",
        )
        store = query_figures(report, scratch, sizes)
        # Sealing's cost (bench/seal.py), verified over the query store.
        import seal

        seal.figures(report, scratch, sizes.ingest_records // 4, sizes.repeats // 2 + 1, store)
        from versus_journal import compare  # it imports this module

        compare(report, scratch / "versus-journal", sizes.journal_records, sizes.repeats)
        log_printf_cost(report, 200_000 if args.quick else 2_000_000)
        lock_hold(report, 10_000 if args.quick else 100_000)
    if args.json:
        args.json.write_text(json.dumps([figure.__dict__ for figure in report.figures], indent=1))


if __name__ == "__main__":
    main()

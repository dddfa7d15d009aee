"""Sealing's cost (docs/sealing.md): ingest with sealing against ingest
without, on the same workload, and verify's speed.

    .venv/bin/python bench/seal.py [--records N] [--rounds R] [--verify-records M]

Ingest: the simulator makes N records into a ring that holds them all
(--rate 0), then ingest drains them (as bench/run.py's sustained ingest);
records/s from the "connected" line to the simulator's exit, i.e. until
every record is committed.  Unsealed and sealed runs alternate, R of each
(sealed: `kextlog db seal-setup` first, seals every second, so a run makes
several), and the medians are compared: target within 10%.  Verify: the
library's walk over a sealed store of M records (made by `kextlog db
seal-setup` over a store bench/out/single_writer builds, or one the
simulator and ingest fill when that program is not built), with the key;
target >= 1,000,000 records/s; and its CPU time per record, which a busy
machine changes less.  Everything is a real process but the walk, which is
timed in this process (the command adds its start-up, about 0.4 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import Report, cpu_seconds, start, stop, wait_for  # noqa: E402

KEXTLOG = [sys.executable, "-m", "kextlog_store.cli"]


def ingest_run(scratch: Path, name: str, records: int, sealed: bool) -> tuple[float, float]:
    """One drained run: records/s, and ingest's CPU time per record (µs)."""
    run = scratch / name
    run.mkdir()
    sock, db, log = run / "sim.sock", run / "k.db", run / "log"
    if sealed:
        subprocess.run([*KEXTLOG, "db", "seal-setup", "--db", str(db)], check=True,
                       capture_output=True)  # fmt: skip
    simulator = start(
        "simulate", "--socket", str(sock), "--rate", "0", "--count", str(records),
        "--ring", str(records), stderr=log,
    )  # fmt: skip
    wait_for(log, r"simulate: generated")
    extra = ["--seal-interval", "1s"] if sealed else []
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), *extra, stderr=log)
    connected = wait_for(log, r"ingest: .* connected to")
    cpu = cpu_seconds(ingest.pid)
    simulator.communicate(timeout=records / 10_000 + 300)
    drained = time.monotonic()
    cpu = cpu_seconds(ingest.pid) - cpu
    stop(ingest)
    return records / (drained - connected), cpu / records * 1e6


def verify_rate(db: Path, key: str) -> tuple[float, float, int]:
    """The walk's records/s over db, with the key, in this process; and
    its CPU time per record (µs, every thread's)."""
    from kextlog_store.seal import verify
    from kextlog_store.store.engine import read_engine
    from kextlog_store.store.location import database_url

    engine = read_engine(database_url(str(db)))
    began, cpu = time.perf_counter(), time.process_time()
    with engine.connect() as connection:
        [report] = verify.verify(connection, verify.parse_key(key), db)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    engine.dispose()
    if report.broken is not None:
        raise RuntimeError(f"the bench store does not verify: {report.broken}")
    return report.records / seconds, cpu / report.records * 1e6, report.records


def verify_store(scratch: Path, records: int) -> Path:
    """A store of records records: single_writer's workload when built
    (make bench), else one the simulator and ingest fill."""
    db = scratch / "verify.db"
    writer = ROOT / "bench" / "out" / "single_writer"
    if writer.exists():
        subprocess.run([*KEXTLOG, "db", "upgrade", "--db", str(db)], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([str(writer), str(db), str(records), "7"], check=True, capture_output=True)
    else:
        run = scratch / "verify-fill"
        run.mkdir()
        sock, log = run / "sim.sock", run / "log"
        simulator = start("simulate", "--socket", str(sock), "--rate", "0", "--count",
                          str(records), "--ring", str(records), stderr=log)  # fmt: skip
        wait_for(log, r"simulate: generated")
        ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db), stderr=log)
        simulator.communicate(timeout=records / 10_000 + 300)
        stop(ingest)
    return db


def seal(db: Path) -> str:
    """Sealing turned on over what db holds; the verification key.  Under
    single_writer's host when it wrote the store."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        hosts = {host for (host,) in connection.execute("SELECT DISTINCT host FROM instances")}
    host = ["--host", "bench"] if hosts == {"bench"} else []
    setup = subprocess.run([*KEXTLOG, "db", "seal-setup", "--db", str(db), *host], check=True,
                           capture_output=True, text=True)  # fmt: skip
    return setup.stdout.strip()


def figures(report: Report, scratch: Path, records: int, rounds: int, store: Path) -> None:
    """Ingest sealed against unsealed, rounds of records each, and verify
    over store once sealing is turned on over it (make bench: its 10M one)."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds):
        for sealed in (False, True):
            name = f"{'sealed' if sealed else 'plain'}-{round_}"
            rate, cpu = ingest_run(scratch, name, records, sealed)
            rates[sealed].append(rate)
            cpus[sealed].append(cpu)
    plain, sealed = statistics.median(rates[False]), statistics.median(rates[True])
    report.add("ingest, unsealed (median)", plain, "records/s",
               note=", ".join(f"{rate:,.0f}" for rate in rates[False]))  # fmt: skip
    report.add("ingest, sealed every 1 s (median)", sealed, "records/s",
               note=", ".join(f"{rate:,.0f}" for rate in rates[True]))  # fmt: skip
    report.add("sealed / unsealed", 100 * sealed / plain, "%", ">= 90%",
               lambda value: value >= 90)  # fmt: skip
    report.add("ingest's CPU per record, unsealed", statistics.median(cpus[False]), "µs")
    report.add("ingest's CPU per record, sealed", statistics.median(cpus[True]), "µs")
    rate, cpu, verified = verify_rate(store, seal(store))
    report.add(f"verify with the key ({verified:,} records)", rate, "records/s",
               ">= 1,000,000", lambda value: value >= 1_000_000)  # fmt: skip
    report.add("verify's CPU per record (both threads)", cpu, "µs",
               note=f"{1 / cpu:,.2f} M records per CPU second")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="per ingest run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind")
    parser.add_argument("--verify-records", type=int, default=2_000_000)
    args = parser.parse_args()
    report = Report()
    scratch = Path(tempfile.mkdtemp(prefix="kextlog-bench-seal-"))
    os.environ["KEXTLOG_DB"] = str(scratch / "unused.db")  # never the system store
    try:
        store = verify_store(scratch, args.verify_records)
        figures(report, scratch, args.records, args.rounds, store)
    except BaseException:
        print(f"bench/seal.py: failed; its files are in {scratch}", file=sys.stderr)
        raise
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

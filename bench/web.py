"""Page load times of `kextlog web` on a large store (issue 19's closing
figures): the server as a subprocess, each page fetched whole over HTTP,
five times, the median reported (and the first, cold, fetch beside it).

    python bench/web.py                       # builds a 10M-record store (as make bench)
    python bench/web.py --store bench/out/store.db --repeats 5

The store is the query benchmark's: bench/out/single_writer (make
bench/out/single_writer) writes SIZE records over 7 days into a migrated
database.  Not part of bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEXTLOG = [sys.executable, "-m", "kextlog_store.cli"]
WRITER = ROOT / "bench" / "out" / "single_writer"


def build(db: Path, records: int) -> float:
    """A migrated store of `records` records over 7 days; seconds it took."""
    if not WRITER.exists():
        subprocess.run(["make", "-C", str(ROOT), "bench/out/single_writer"], check=True)
    subprocess.run([*KEXTLOG, "db", "upgrade", "--db", str(db)], check=True, capture_output=True)
    built = subprocess.run(
        [str(WRITER), str(db), str(records), "7"], check=True, capture_output=True
    )
    return float(json.loads(built.stdout)["seconds"])


def fetch(url: str) -> tuple[float, int, int]:
    """Seconds to fetch url whole, its status and its size."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=300) as response:
            body, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    return time.perf_counter() - started, status, len(body)


def pages(db: Path) -> list[tuple[str, str]]:
    """(name, path) of the pages measured, some of them picked from the store."""
    newest = subprocess.run(
        [*KEXTLOG, "query", "--db", str(db), "-n", "1", "-o", "json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    record = json.loads(newest.stdout)
    pid = record["pid"]
    return [
        ("home page (the newest 200 records)", "/"),
        ("filtered: level error, since 1h", "/?level=error&since=1h"),
        (f"filtered: pid {pid}", f"/?pid={pid}"),
        ("record page (neighbours, +-1 minute)", f"/record/{record['instance']}/{record['seq']}"),
        ("stats page", "/stats"),
        ("stats page, since 1h", "/stats?since=1h"),
        ("home page's chart (JSON)", "/-/kextlog/chart.json"),
        ("home page's facets (JSON)", "/-/kextlog/facets.json"),
        ("filtered page's chart (JSON)", "/-/kextlog/chart.json?level=error&since=1h"),
        ("filtered page's facets (JSON)", "/-/kextlog/facets.json?level=error&since=1h"),
        ("Datasette: the records table", "/store/records"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="an existing store (default: build one)")
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kextlog-web-bench-") as scratch:
        db = options.store
        if db is None:
            db = Path(scratch) / "store.db"
            seconds = build(db, options.records)
            print(f"store: {options.records:,} records over 7 days, built in {seconds:.0f} s")
        server = subprocess.Popen(
            [*KEXTLOG, "web", "--db", str(db), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            found = re.search(r"at (http://\S+)/$", server.stdout.readline().strip())
            if found is None:
                raise SystemExit("kextlog web did not start")
            base = found[1]
            figures = []
            print(f"{'page':<42} {'median':>9} {'first':>9}  status  bytes")
            for name, path in pages(db):
                runs = [fetch(base + path) for _ in range(options.repeats)]
                times = [seconds for seconds, _, _ in runs]
                status, size = runs[-1][1], runs[-1][2]
                median = statistics.median(times)
                figures.append(
                    {"page": name, "path": path, "median_ms": median * 1000,
                     "first_ms": times[0] * 1000, "status": status, "bytes": size}
                )  # fmt: skip
                print(f"{name:<42} {median * 1000:>7.0f} ms {times[0] * 1000:>6.0f} ms"
                      f"  {status:>6}  {size:,}")  # fmt: skip
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

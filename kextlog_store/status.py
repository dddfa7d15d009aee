"""The ingest daemon's live state, published where `kextlog status` reads it.

The daemon rewrites a small JSON file about once a second (atomically: a
reader never sees half of it): beside a SQLite database as `<db>-ingest.json`,
like SQLite's own -wal and -shm files; for other back ends in the user's
runtime directory, named after the database URL.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from .errors import DatabaseError
from .redact import redact
from .store import sqlite_path

# A running daemon publishes every second, but its writer may first wait out
# the store's busy timeout (10 s) for a lock another process holds.
STALE_SECONDS = 15.0


def status_path(url: str) -> Path:
    database = sqlite_path(url)
    if database is not None:
        return database.with_name(database.name + "-ingest.json")
    import platformdirs

    # The URL as SQLAlchemy writes it (the daemon's and a reader's alike),
    # without its password: no hash of a password in a file name.
    name = redact(make_url(url).render_as_string(hide_password=False))
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return Path(platformdirs.user_runtime_dir("kextlog")) / f"ingest-{digest}.json"


class Publisher:
    """Writes the daemon's snapshots to the status file."""

    def __init__(self, url: str) -> None:
        self.path = status_path(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, snapshot: dict) -> None:
        data = (json.dumps(snapshot, indent=1) + "\n").encode()
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            temporary.write_bytes(data)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            if error.errno != errno.ENOSPC or not self.path.exists():
                raise
            # A full disk, likely the store's outage, which status is to
            # show: over the last state in place, which takes no new space;
            # padded (JSON may end in blanks) so that none of it is left.
            with self.path.open("r+b") as file:
                size = file.seek(0, os.SEEK_END)
                file.seek(0)
                file.write(data.ljust(size, b" "))
            return
        os.replace(temporary, self.path)


@dataclass(frozen=True)
class IngestStatus:
    path: Path
    snapshot: dict
    alive: bool  # the daemon that wrote it still runs and still publishes

    @property
    def state(self) -> str:
        if self.alive:
            return "running"
        return "stopped" if not self.snapshot.get("running") else "not running (it died)"


def read_status(url: str) -> IngestStatus | None:
    """The last state ingest published for this store; None if it never ran."""
    path = status_path(url)
    try:
        snapshot = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise DatabaseError(f"cannot read the ingest status {path}: {error}") from None
    age = time.time() - snapshot.get("updated_ns", 0) / 1e9
    alive = bool(snapshot.get("running")) and _process_exists(snapshot.get("pid", 0))
    return IngestStatus(path, snapshot, alive and age < STALE_SECONDS)


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def describe(status: IngestStatus) -> list[str]:
    """`kextlog status` in words."""
    snapshot = status.snapshot
    updated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot["updated_ns"] / 1e9))
    latency = snapshot["latency_ms"]["recent"]
    lines = [
        f"ingest: {status.state} (pid {snapshot['pid']}), last update {updated}",
        f"  stored {snapshot['stored']:,} records in {snapshot['commits']:,} commits, "
        f"lost {snapshot['lost']:,}, filtered {snapshot['filtered']:,}",
    ]
    outage = snapshot.get("store_outage")
    if outage is not None:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(outage["since_ns"] / 1e9))
        lines.append(
            f"  store: {outage['what']} since {since}, {outage['waiting']:,} records waiting, "
            f"retrying ({outage['error']})"
        )
    if latency["samples"]:
        lines.append(
            f"  kernel-to-commit latency p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms "
            f"over the last second ({latency['samples']:,} samples)"
        )
    for source in snapshot["sources"]:
        connected = "connected" if source["connected"] and status.alive else "disconnected"
        lines.append(f"{source['source']}: {connected}")
        if source["error"] and not source["connected"]:
            lines.append(f"  last error: {source['error']}")
        skipped = source.get("skipped")  # absent from the files of older daemons
        if skipped and skipped["bytes"]:
            problems = ", ".join(
                f"{count:,} {problem}" for problem, count in skipped["problems"].items()
            )
            lines.append(f"  skipped {skipped['bytes']:,} bytes of malformed input ({problems})")
        if source["instance"] is None:
            continue
        lines.append(f"  producer {source['producer']}, instance {source['instance']}")
        lines.append(
            f"  committed seq {source['committed_seq']:,}, lag {source['lag']:,} records, "
            f"lost {source['lost']:,} records"
            if source["committed_seq"] is not None
            else "  nothing committed yet"
        )
        ring = source["ring"]
        if ring is not None:
            fill = ring["records"] / ring["capacity"] if ring["capacity"] else 0.0
            lines.append(
                f"  ring {ring['records']:,} of {ring['capacity']:,} records ({fill:.0%}), "
                f"{ring['producer_lost']:,} lost since the kext loaded"
            )
    return lines

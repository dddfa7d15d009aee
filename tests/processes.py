"""Running kextlog commands as real processes, as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

COMMAND = [sys.executable, "-m", "kextlog_store.cli"]


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1")
    env.pop("KEXTLOG_DB", None)  # tests name their database; never the system store
    env.update(extra)
    return env


def kextlog(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Runs one command to completion."""
    return subprocess.run(
        [*COMMAND, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(**env),
    )


def start(*args: str, log: Path | None = None, **env: str) -> subprocess.Popen[str]:
    """Starts a long-running command (simulate, ingest); its stderr goes to
    log when given (a chatty process must not fill a pipe nobody reads)."""
    return subprocess.Popen(
        [*COMMAND, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if log is None else log.open("a"),
        text=True,
        env=environment(**env),
    )


def wait_for_socket(path: Path, timeout: float = 15.0) -> None:
    """Until the socket file exists (connecting would take the producer's one
    client slot; clients retry the instant between bind and listen)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no socket at {path}")
        time.sleep(0.02)


def connect(path: Path, kind: int = socket.SOCK_SEQPACKET) -> socket.socket:
    """A client connection, retried while the producer starts listening (or
    replaces a stale socket file: it removes the file, then binds its own)."""
    wait_for_socket(path)
    deadline = time.monotonic() + 30  # generous: it only bounds a failure
    while True:
        client = socket.socket(socket.AF_UNIX, kind)
        try:
            client.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
            continue
        client.settimeout(5)
        return client


def start_simulator(sock: Path, *args: str, log: Path | None = None) -> subprocess.Popen[str]:
    """`kextlog simulate --socket SOCK ARGS`, once it listens (its socket file
    is there)."""
    simulator = start("simulate", "--socket", str(sock), *args, log=log)
    wait_for_socket(sock)
    return simulator


def start_ingest(
    sock: Path, db: Path | str, *args: str, log: Path | None = None, **env: str
) -> subprocess.Popen[str]:
    """`kextlog ingest --source unix:SOCK --db DB ARGS` (DB a path or a URL)."""
    return start("ingest", "--source", f"unix:{sock}", "--db", str(db), *args, log=log, **env)

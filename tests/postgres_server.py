"""A throw-away PostgreSQL server for the tests and the benchmark.

The cluster lives in a temporary directory owned by the postgres user (the
server refuses to run as root, and these machines run as root), listens on
a Unix socket in that directory only (listen_addresses=''), and is stopped
and removed afterwards.  For tests fsync is off: a test server's data need
not survive a power cut; the benchmark asks for PostgreSQL's defaults.  The binaries come from
the Debian package (tests/install-packages.sh installs it for `make test`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
START_SECONDS = 60


class PostgresUnavailable(Exception):
    """Why no server could be started (not installed, initdb or start failed)."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
            "`make test` installs it with apt-get)"
        )
    return found[-1].parent


@dataclass(frozen=True)
class Server:
    directory: Path  # the cluster's data lives in data/, the socket beside it

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.directory}"


def _as_owner(command: list[str], owner: pwd.struct_passwd | None) -> list[str]:
    # As root, PostgreSQL's tools must run as the user who owns the cluster.
    return command if owner is None else ["runuser", "-u", owner.pw_name, "--", *command]


def _run(command: list[str], owner: pwd.struct_passwd | None, what: str) -> None:
    try:
        done = subprocess.run(
            _as_owner(command, owner), capture_output=True, text=True, timeout=START_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresUnavailable(f"{what}: {exc}") from None
    if done.returncode != 0:
        output = " ".join((done.stderr or done.stdout).split())[-400:]
        raise PostgresUnavailable(f"{what} failed: {output}")


@contextlib.contextmanager
def running(durable: bool = False) -> Iterator[Server]:
    """A started server; stopped (fast shutdown) and removed on exit.
    durable: PostgreSQL's own defaults (fsync, synchronous commits) as a
    store would run, for measuring; else fsync off, for tests.
    Raises PostgresUnavailable with the reason when it cannot start."""
    binaries = bin_dir()
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise PostgresUnavailable("no postgres user to run the server as") from None
    directory = Path(tempfile.mkdtemp(prefix="kextlog-pg-"))
    started = False
    try:
        if owner is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        data, log = directory / "data", directory / "server.log"
        _run(
            [str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            owner,
            "initdb",
        )  # fmt: skip
        settings = (
            f"-c listen_addresses='' -c unix_socket_directories='{directory}'"
            " -c max_connections=200"
        )
        if not durable:
            settings += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = True
        _run(
            [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
             "-t", str(START_SECONDS), "-o", settings, "start"],
            owner,
            "starting PostgreSQL",
        )  # fmt: skip
        yield Server(directory)
    finally:
        if started:
            with contextlib.suppress(PostgresUnavailable):
                _run(
                    [str(binaries / "pg_ctl"), "-D", str(directory / "data"), "-m", "fast",
                     "-w", "stop"],
                    owner,
                    "stopping PostgreSQL",
                )  # fmt: skip
        shutil.rmtree(directory, ignore_errors=True)

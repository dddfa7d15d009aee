"""Who may read and change what: the store is private to its user and the
admin group, the simulator's socket to its user, and ingest refuses a
database path that others could change.  We run as root: another user is
`nobody`, in a process that dropped its privileges (setpriv)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kextlog_store import store
from tests.conftest import unavailable
from tests.processes import COMMAND, connect, kextlog, start, wait_for_socket


@pytest.fixture(autouse=True)
def as_another_user() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        unavailable("needs root and setpriv(1), to act as another user")


# Another user, with none of root's groups; and the same user in the admin group.
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
ADMIN_GROUP = grp.getgrgid(store.admin_group()).gr_name
NOBODY_IN_ADMIN_GROUP = ["setpriv", "--reuid=nobody", "--regid=nogroup", f"--groups={ADMIN_GROUP}"]


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory everyone may enter (pytest's own are root's alone), so
    that only the modes under test keep another user out."""
    path = Path(tempfile.mkdtemp(prefix="kextlog-permissions-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def reachable_checkout() -> Iterator[None]:
    """Another user runs this checkout's kextlog: its directories must let
    them through (a clone in `mktemp -d` is root's alone), for this test."""
    changed = []
    for directory in Path(__file__).resolve().parents[1:]:
        mode = stat.S_IMODE(directory.stat().st_mode)
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
            changed.append((directory, mode))
    yield
    for directory, mode in changed:
        directory.chmod(mode)


def as_user(user: list[str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*user, *command], capture_output=True, text=True, timeout=60, check=False
    )


def mode_and_group(path: Path) -> tuple[str, str]:
    info = path.stat()
    return f"{stat.S_IMODE(info.st_mode):04o}", grp.getgrgid(info.st_gid).gr_name


def test_the_store_is_private_to_its_user_and_the_admin_group(
    shared: Path, reachable_checkout: None
) -> None:
    sock, db = shared / "sim.sock", shared / "store" / "kextlog.db"
    simulator = start("simulate", "--socket", str(sock), "--count", "300", "--rate", "0")
    wait_for_socket(sock)
    ingest = start("ingest", "--source", f"unix:{sock}", "--db", str(db))
    try:
        assert simulator.wait(timeout=60) == 0  # everything acknowledged: stored
        status = db.with_name("kextlog.db-ingest.json")
        files = [db, db.with_name("kextlog.db-wal"), db.with_name("kextlog.db-shm"), status]
        for path in files:  # while ingest runs, so that -wal and -shm exist
            assert path.exists(), path
        setgid = "2" if sys.platform.startswith("linux") else "0"
        assert mode_and_group(db.parent) == (f"{setgid}750", ADMIN_GROUP)
        for path in files:
            assert mode_and_group(path) == ("0640", ADMIN_GROUP), path

        # Another user: not into the directory, and not into the files even
        # where the directory lets them through.
        denied = as_user(NOBODY, "head", "-c", "16", str(db))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
        db.parent.chmod(0o755)
        control = db.with_name("public")
        control.write_text("readable\n")
        control.chmod(0o644)
        assert as_user(NOBODY, "cat", str(control)).stdout == "readable\n"  # the drop works
        for path in files:
            denied = as_user(NOBODY, "head", "-c", "16", str(path))
            assert denied.returncode != 0 and "Permission denied" in denied.stderr, path
        # The admin group reads it, also with kextlog sql (SQLite's read-only
        # WAL access: -wal and -shm exist while ingest runs).
        allowed = as_user(NOBODY_IN_ADMIN_GROUP, "head", "-c", "16", str(db))
        assert allowed.stdout == "SQLite format 3\0"
        counted = as_user(
            NOBODY_IN_ADMIN_GROUP, *COMMAND, "sql", "--db", str(db), "-o", "json",
            "SELECT count(*) AS n FROM records",
        )  # fmt: skip
        assert (counted.returncode, counted.stdout) == (0, '{"n": 300}\n'), counted.stderr
        refused = as_user(NOBODY, *COMMAND, "sql", "--db", str(db), "SELECT 1")
        assert (refused.returncode, refused.stderr) == (
            1,
            f"kextlog: error: {db}: unable to open database file\n",
        )
    finally:
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(timeout=30) == 0


def test_others_cannot_connect_to_the_simulator(shared: Path) -> None:
    sock = shared / "sim.sock"
    simulator = start("simulate", "--socket", str(sock), "--count", "10", "--rate", "0")
    try:
        wait_for_socket(sock)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        attempt = (
            "import socket, sys\n"
            "client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
            "try:\n"
            "    client.connect(sys.argv[1])\n"
            "except OSError as error:\n"
            "    sys.exit(error.strerror)\n"
        )
        denied = as_user(NOBODY, "/usr/bin/python3", "-c", attempt, str(sock))
        assert (denied.returncode, denied.stderr) == (1, "Permission denied\n")
        with connect(sock) as mine:  # its own user is served: a HELLO
            assert len(mine.recv(65536)) == 144
    finally:
        simulator.send_signal(signal.SIGTERM)
        out, _ = simulator.communicate(timeout=30)
    assert json.loads(out)["generated"] == 10


def unsafe_paths(shared: Path) -> dict[str, tuple[Path, Path, str]]:
    """Name: (database, the path at fault, what the error says of it)."""
    everyone = shared / "everyone"
    everyone.mkdir(mode=0o777)
    everyone.chmod(0o777)
    theirs = shared / "theirs"
    theirs.mkdir()
    os.chown(theirs, pwd_uid("nobody"), -1)
    under = everyone / "inner"
    under.mkdir(mode=0o755)
    writable_file = shared / "file" / "kextlog.db"
    writable_file.parent.mkdir()
    writable_file.write_bytes(b"")
    writable_file.chmod(0o666)
    wal = shared / "wal" / "kextlog.db"
    wal.parent.mkdir()
    wal.with_name("kextlog.db-wal").write_bytes(b"")
    wal.with_name("kextlog.db-wal").chmod(0o666)
    return {
        "a world-writable directory": (everyone / "k.db", everyone, "is writable by everyone"),
        "a directory of another user": (theirs / "k.db", theirs, "is owned by nobody"),
        "a world-writable parent": (under / "sub" / "k.db", everyone, "is writable by everyone"),
        "a world-writable file": (writable_file, writable_file, "is writable by everyone"),
        "a world-writable -wal": (wal, wal.with_name("kextlog.db-wal"), "is writable by everyone"),
    }


def pwd_uid(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


@pytest.mark.parametrize(
    "case",
    [
        "a world-writable directory",
        "a directory of another user",
        "a world-writable parent",
        "a world-writable file",
        "a world-writable -wal",
    ],
)
def test_ingest_refuses_a_database_others_could_change(shared: Path, case: str) -> None:
    db, fault, problem = unsafe_paths(shared)[case]

    def contents() -> list[tuple[str, int, int]]:
        return sorted(
            (str(path), path.stat().st_mode, path.stat().st_size) for path in shared.rglob("*")
        )

    before = contents()
    result = kextlog("ingest", "--source", "unix:/nonexistent.sock", "--db", str(db))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"kextlog: error: refusing the database {db}: {fault} {problem}"
    )
    assert len(result.stderr.splitlines()) == 1
    assert contents() == before  # nothing created, nothing changed
    checked = kextlog("ingest", "--source", "kmsg", "--db", str(db), "--check-config")
    assert checked.returncode == 1 and "refusing the database" in checked.stderr


def test_a_sticky_shared_directory_is_accepted(shared: Path) -> None:
    sticky = shared / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)  # as /tmp: others cannot remove or rename our files
    result = kextlog("ingest", "--source", "kmsg", "--db", str(sticky / "k.db"), "--check-config")
    assert result.returncode == 0, result.stderr
    assert list(sticky.iterdir()) == []

"""Who may read and change what: the store is private to its user and the
admin group, the simulator's socket to its user, and no path another user
could change is followed (a directory they may write, a link they
planted), nor a producer, configuration or syslog socket of theirs
believed.  We run as root: another user is `nobody`, in a process that
dropped its privileges (setpriv)."""

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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kextlog_store.store.location import admin_group, private_directory
from tests.conftest import unavailable
from tests.processes import (
    COMMAND,
    connect,
    kextlog,
    start_ingest,
    start_simulator,
    wait_for_socket,
)


@pytest.fixture(autouse=True)
def as_another_user() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        unavailable("needs root and setpriv(1), to act as another user")


# Another user, with none of root's groups; and the same user in the admin group.
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
ADMIN_GROUP = grp.getgrgid(admin_group()).gr_name
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
    # Made as ingest makes the default store's directory (it makes no other).
    private_directory(db.parent, create=True).close()
    simulator = start_simulator(sock, "--count", "300", "--rate", "0")
    ingest = start_ingest(sock, db)
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


def test_only_the_default_stores_own_directory_is_made(
    shared: Path, reachable_checkout: None
) -> None:
    """A user's default store (no --db) gets its directory, private; a --db
    whose directory is missing (a typo) is a one-line error that makes nothing."""
    home = shared / "home"
    home.mkdir()
    os.chown(home, pwd.getpwnam("nobody").pw_uid, -1)
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": f"{home}/data"}
    env.pop("KEXTLOG_DB", None)

    def upgrade(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*NOBODY, *COMMAND, "db", "upgrade", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    typo = home / "nonexistent" / "dir" / "k.db"
    refused = upgrade("--db", str(typo))
    assert (refused.returncode, refused.stderr) == (
        1,
        f"kextlog: error: cannot create the database {typo}: {typo.parent.parent}: "
        "no such directory\n",
    )
    made = upgrade()
    assert made.returncode == 0, made.stderr
    assert sorted(path.name for path in home.iterdir()) == ["data"]
    store = home / "data" / "kextlog"
    assert (store / "kextlog.db").is_file()
    setgid = "2" if sys.platform.startswith("linux") else "0"
    assert mode_and_group(store) == (f"{setgid}750", "nogroup")


def test_others_cannot_connect_to_the_simulator(shared: Path) -> None:
    sock = shared / "sim.sock"
    simulator = start_simulator(sock, "--count", "10", "--rate", "0")
    try:
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


def test_a_sticky_shared_directory_is_accepted_on_the_way_only(shared: Path) -> None:
    """Sticky, as /tmp: others cannot rename or remove our directory in it,
    but they can plant names beside a database there (see below)."""
    sticky = shared / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)  # as /tmp: others cannot remove or rename our files
    result = kextlog("ingest", "--source", "kmsg", "--db", str(sticky / "k.db"), "--check-config")
    assert result.returncode == 1
    assert f"{sticky} is writable by everyone (mode 1777)" in result.stderr
    db = sticky / "store" / "k.db"
    result = kextlog("ingest", "--source", "kmsg", "--db", str(db), "--check-config")
    assert result.returncode == 0, result.stderr
    assert list(sticky.iterdir()) == []


# --- another user steering the paths root opens -------------------------------

BOOT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.fixture
def sticky(shared: Path) -> Path:
    """A /tmp of its own: everyone may create names in it, and remove only their own."""
    path = shared / "sticky"
    path.mkdir()
    path.chmod(0o1777)
    return path


@pytest.fixture
def capture(shared: Path) -> Path:
    """Two kmsg records: `ingest --source kmsg --once` stores them and ends."""
    path = shared / "capture"
    path.write_text("6,1,1000,-;one\n6,2,2000,-;two\n")
    return path


class Aimed:
    """A root-only directory and a file in it that another user aims at: root
    must never create anything there, nor change the file."""

    def __init__(self, shared: Path) -> None:
        self.directory = shared / "private"
        self.directory.mkdir(mode=0o700)
        self.file = self.directory / "target"
        self.file.write_text("root's own\n")
        self.file.chmod(0o644)
        self.before = self.state()

    def state(self) -> list[tuple[str, int, bytes]]:
        return sorted(
            (path.name, path.stat().st_mode, path.read_bytes()) for path in self.directory.iterdir()
        )

    def untouched(self) -> bool:
        return self.state() == self.before


@pytest.fixture
def aimed(shared: Path) -> Aimed:
    return Aimed(shared)


def plant_link(target: Path, link: Path, user: list[str] = NOBODY) -> None:
    planted = as_user(user, "ln", "-s", str(target), str(link))
    assert planted.returncode == 0, planted.stderr


def ingest_once(db: Path, capture: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return kextlog(
        "ingest", "--source", "kmsg", "--kmsg-path", str(capture), "--kmsg-boot-id", BOOT,
        "--once", "--db", str(db), *extra,
    )  # fmt: skip


def refused(result: subprocess.CompletedProcess[str], message: str) -> bool:
    """One line on stderr, exit 1, saying message."""
    return (
        result.returncode == 1
        and len(result.stderr.splitlines()) == 1
        and result.stderr.startswith("kextlog: error: ")
        and message in result.stderr
    )


@pytest.mark.parametrize(
    "name",
    [
        "k.db",  # where the database is to be created
        "k.db-wal",
        "k.db-journal",
        "k.db-ingest.json.tmp",  # the state's temporary file
        "k.db-ingest.json",
        "k.db-ingest.lock",
    ],
)
def test_links_another_user_plants_beside_the_store_are_never_followed(
    sticky: Path, aimed: Aimed, capture: Path, name: str
) -> None:
    """A store in a directory everyone writes (even sticky, as /tmp): another
    user plants a link at a name root will open, to a file of root's, or to
    where root would create one.  SQLite opens -wal and -journal by name
    there, so no such directory is accepted."""
    target = aimed.directory / "new.db" if name == "k.db" else aimed.file
    plant_link(target, sticky / name)
    result = ingest_once(sticky / "k.db", capture)
    assert refused(result, f"refusing the database {sticky / 'k.db'}: {sticky} is writable"), (
        result.stderr
    )
    assert aimed.untouched()
    assert sorted(path.name for path in sticky.iterdir()) == [name]


def test_a_link_another_user_owns_on_the_way_is_never_followed(
    sticky: Path, aimed: Aimed, capture: Path
) -> None:
    """--db /tmp/link/k.db, where another user made /tmp/link point into a
    directory of root's: the directories are all root's, but the way there
    is the other user's to change."""
    link = sticky / "link"
    plant_link(aimed.directory, link)
    db = link / "k.db"
    result = ingest_once(db, capture)
    assert refused(result, f"refusing the database {db}: {link} is a symbolic link owned by nobody")
    assert aimed.untouched()
    upgrade = kextlog("db", "upgrade", "--db", str(db))
    assert refused(upgrade, f"{link} is a symbolic link owned by nobody"), upgrade.stderr
    assert aimed.untouched()
    # A store of root's there: no command reaches it through the link.
    assert kextlog("db", "upgrade", "--db", str(aimed.directory / "k.db")).returncode == 0
    for command in (("query",), ("sql", "SELECT 1"), ("stats",), ("db", "check"), ("status",)):
        other = kextlog(*command, "--db", str(db))
        assert refused(other, f"{link} is a symbolic link owned by nobody"), (command, other.stderr)


def test_prune_never_reaches_a_store_through_another_users_link(
    shared: Path, sticky: Path, capture: Path
) -> None:
    """root's store, and a link of another user's to it: prune through the
    link would remove root's records wherever the other user points it."""
    store = shared / "store"
    store.mkdir()
    assert ingest_once(store / "k.db", capture).returncode == 0
    link = sticky / "link"
    plant_link(store, link)
    result = kextlog("prune", "--db", str(link / "k.db"), "--older-than", "0s")
    assert refused(result, f"{link} is a symbolic link owned by nobody"), result.stderr
    counted = kextlog(
        "sql", "--db", str(store / "k.db"), "-o", "json", "SELECT count(*) AS n FROM log"
    )
    assert counted.stdout == '{"n": 2}\n'


def test_roots_own_link_is_followed(shared: Path, sticky: Path, capture: Path) -> None:
    store = shared / "store"
    store.mkdir(mode=0o755)
    (sticky / "link").symlink_to(store)  # root's: only root can change it
    assert ingest_once(sticky / "link" / "k.db", capture).returncode == 0
    assert (store / "k.db").exists()


def test_a_directory_whose_group_holds_another_user_is_refused(
    shared: Path, aimed: Aimed, capture: Path
) -> None:
    """Writable by its group, nogroup, which is nobody's: nobody plants a link."""
    directory = shared / "group"
    directory.mkdir()
    os.chown(directory, 0, grp.getgrnam("nogroup").gr_gid)
    directory.chmod(0o775)
    plant_link(aimed.directory / "new.db", directory / "k.db")
    result = ingest_once(directory / "k.db", capture)
    assert refused(
        result,
        f"refusing the database {directory / 'k.db'}: {directory} is writable by group nogroup",
    ), result.stderr
    assert aimed.untouched()


def test_a_directory_writable_by_a_group_of_root_alone_is_accepted(
    shared: Path, capture: Path
) -> None:
    directory = shared / "group"
    directory.mkdir()
    directory.chmod(0o775)  # group root: no member but root
    assert ingest_once(directory / "k.db", capture).returncode == 0


def test_the_simulator_never_serves_where_another_user_can_change_the_socket(
    shared: Path, aimed: Aimed
) -> None:
    theirs = shared / "theirs"
    theirs.mkdir()
    os.chown(theirs, pwd_uid("nobody"), -1)
    result = kextlog("simulate", "--socket", str(theirs / "sim.sock"), "--count", "1")
    assert refused(result, f"{theirs} is owned by nobody"), result.stderr
    assert list(theirs.iterdir()) == []
    result = kextlog(
        "simulate", "--socket", str(shared / "sim.sock"), "--count", "1",
        "--record", str(theirs / "sent.jsonl"),
    )  # fmt: skip
    assert refused(result, f"{theirs} is owned by nobody"), result.stderr
    assert list(theirs.iterdir()) == []


def test_the_simulator_never_binds_or_chmods_through_a_link(sticky: Path, aimed: Aimed) -> None:
    """In /tmp (sticky) the socket may be: a link another user put at its
    name is refused, and the file it points to keeps its mode."""
    plant_link(aimed.file, sticky / "sim.sock")
    result = kextlog("simulate", "--socket", str(sticky / "sim.sock"), "--count", "1")
    assert refused(result, f"{sticky / 'sim.sock'} exists and is not a socket"), result.stderr
    assert aimed.untouched()


# A producer another user runs: HELLO, then a record, on its own socket.
FORGER = """
import socket, sys, time
server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
server.bind(sys.argv[1])
server.listen(1)
client, _ = server.accept()
client.sendall(bytes.fromhex(sys.argv[2]))
client.recv(64)
client.sendall(bytes.fromhex(sys.argv[3]))
time.sleep(30)
"""


def test_ingest_never_believes_a_producer_another_user_runs(sticky: Path) -> None:
    """A socket another user planted where a producer's is expected: as root,
    ingest could connect to it (root passes any mode) and store its records
    as the producer's."""
    from tests.test_wire import hello_bytes, log_bytes

    sock, db = sticky / "kext.sock", sticky.parent / "store" / "k.db"
    db.parent.mkdir()
    forger = subprocess.Popen(
        [*NOBODY, "/usr/bin/python3", "-c", FORGER, str(sock), hello_bytes().hex(),
         log_bytes(17, b"forged").hex()],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_socket(sock)
        ingest = start_ingest(sock, db)
        try:
            deadline = time.monotonic() + 15
            while "refused" not in (status := kextlog("status", "--db", str(db))).stdout:
                assert time.monotonic() < deadline, status.stdout
                time.sleep(0.1)
        finally:
            ingest.send_signal(signal.SIGTERM)
            _, err = ingest.communicate(timeout=30)
        assert err.count(f"unix:{sock}: the producer runs as nobody") == 1, err
        assert "refused" in status.stdout
        stored = kextlog("sql", "--db", str(db), "-o", "json", "SELECT count(*) AS n FROM log")
        assert stored.stdout == '{"n": 0}\n'
    finally:
        forger.kill()
        forger.wait()


def test_a_configuration_file_another_user_can_change_is_refused(
    shared: Path, aimed: Aimed
) -> None:
    config = shared / "kextlog.toml"
    config.write_text(f'sources = ["kmsg"]\ndatabase = "{aimed.directory / "new.db"}"\n')
    os.chown(config, pwd_uid("nobody"), -1)
    for extra in ((), ("--check-config",)):
        result = kextlog("ingest", "--config", str(config), "--once", *extra)
        assert refused(result, f"refusing the configuration {config}: {config} is owned by nobody")
    assert aimed.untouched()


SYSLOG = """
import socket, sys
server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
server.bind(sys.argv[1])
server.settimeout(20)
print(server.recv(4096).decode(errors="replace"), flush=True)
"""


def test_ingest_never_logs_to_a_syslog_socket_another_user_planted(
    sticky: Path, capture: Path
) -> None:
    sock = sticky / "log"
    listener = subprocess.Popen(
        [*NOBODY, "/usr/bin/python3", "-c", SYSLOG, str(sock)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_socket(sock)
        config = sticky.parent / "kextlog.toml"
        config.write_text(f'syslog_socket = "{sock}"\n')
        (sticky.parent / "store").mkdir()
        result = ingest_once(sticky.parent / "store" / "k.db", capture, "--config", str(config),
                             "--syslog")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"refusing the syslog socket {sock}: {sock} is owned by nobody" in result.stderr
    finally:
        listener.kill()
        heard, _ = listener.communicate()
    assert heard == ""

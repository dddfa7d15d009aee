"""`kextlog status` believes only what the running daemon published: a state
file it cannot trust or read is refused in one line, a daemon that died is
told from a running one by the lock ingest holds, a second daemon on the
same store or producer is refused, and producer text is escaped.  The
other user is `nobody` (tests/test_permissions.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from kextlog_store._native import ffi, lib
from kextlog_store.status import read_status
from kextlog_store.store.location import database_url
from tests import test_permissions
from tests.processes import kextlog, start, start_ingest, start_simulator
from tests.test_permissions import BOOT, NOBODY, as_user, refused
from tests.test_wire import log_bytes

shared = test_permissions.shared  # the fixture: a directory everyone may enter

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to act as nobody")


def snapshot(**changes: object) -> dict:
    """A state as ingest writes it: one source, connected."""
    now = time.time_ns()
    state = {
        "pid": 1,  # a process that exists: init
        "running": True,
        "started_ns": now,
        "updated_ns": now,
        "stored": 123_456_789,
        "lost": 0,
        "filtered": 0,
        "commits": 1,
        "store_outage": None,
        "latency_ms": {
            "recent": {"p50": 1.0, "p99": 2.0, "samples": 5},
            "run": {"p50": 1.0, "p99": 2.0, "samples": 5},
        },
        "sources": [
            {
                "source": "unix:/run/kext.sock",
                "connected": True,
                "since_ns": now,
                "error": None,
                "producer": "com.example.kext 1.0.0",
                "instance": "0690a5df" * 4,
                "committed_seq": 5,
                "lag": 0,
                "lost": 0,
                "skipped": {"bytes": 0, "problems": {}},
                "ring": None,
            }
        ],
    }
    state.update(changes)
    return state


def wait_until_running(db: Path) -> dict:
    deadline = time.monotonic() + 30
    while (current := read_status(database_url(str(db)))) is None or not current.alive:
        assert time.monotonic() < deadline, "ingest never published its state"
        time.sleep(0.05)
    return current.snapshot


@needs_root
def test_a_state_another_user_forged_beside_a_store_in_tmp_is_not_believed(shared: Path) -> None:
    """/tmp-like: everyone may create names; nobody forges a running daemon."""
    sticky = shared / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    state = sticky / "k.db-ingest.json"
    forged = as_user(
        NOBODY, "/usr/bin/python3", "-c",
        "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", str(state),
        json.dumps(snapshot()),
    )  # fmt: skip
    assert forged.returncode == 0, forged.stderr
    result = kextlog("status", "--db", str(sticky / "k.db"))
    assert refused(result, f"{sticky} is writable by everyone"), result.stderr
    assert "123,456,789" not in result.stdout


@needs_root
def test_a_state_file_of_another_user_is_not_believed(tmp_path: Path) -> None:
    state = tmp_path / "k.db-ingest.json"
    state.write_text(json.dumps(snapshot()))
    os.chown(state, 65534, -1)
    result = kextlog("status", "--db", str(tmp_path / "k.db"))
    assert refused(result, f"{state} is owned by nobody"), result.stderr
    assert result.stdout == ""
    state.chmod(0o666)
    os.chown(state, 0, -1)
    result = kextlog("status", "--db", str(tmp_path / "k.db"))
    assert refused(result, f"{state} is writable by everyone"), result.stderr


MALFORMED = {
    "not JSON": b'{"pid": 1,',
    "not an object": b"[]",
    "a key missing": json.dumps({k: v for k, v in snapshot().items() if k != "sources"}).encode(),
    "a string for a number": json.dumps(snapshot(pid="1")).encode(),
    "a boolean for a number": json.dumps(snapshot(stored=True)).encode(),
    "a negative count": json.dumps(snapshot(lost=-5)).encode(),
    "a huge time": json.dumps(snapshot(updated_ns=10**30)).encode(),
    "a huge count": json.dumps(snapshot(stored=10**400)).encode(),
    "NaN": json.dumps(snapshot()).replace('"p50": 1.0', '"p50": NaN', 1).encode(),
    "a string for a flag": json.dumps(snapshot(running="yes")).encode(),
    "a bad source": json.dumps(snapshot(sources=[{"source": 5}])).encode(),
    "deep nesting": b'{"pid": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "too large": json.dumps(snapshot()).encode() + b" " * (2 << 20),
    "not UTF-8": json.dumps(snapshot()).encode().replace(b"kext.sock", b"kext\xff.sock"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_state_file_is_one_line(tmp_path: Path, case: str) -> None:
    state = tmp_path / "k.db-ingest.json"
    state.write_bytes(MALFORMED[case])
    result = kextlog("status", "--db", str(tmp_path / "k.db"))
    assert refused(result, f"{state}: not a state ingest wrote ("), result.stderr
    assert result.stdout == ""
    shown = kextlog("status", "--db", str(tmp_path / "k.db"), "-o", "json")
    assert refused(shown, f"{state}: not a state ingest wrote ("), shown.stderr


def test_a_daemon_that_died_is_not_running(tmp_path: Path) -> None:
    """Told by the lock, at once: not by the age of its last state."""
    db = tmp_path / "k.db"
    ingest = start_ingest(tmp_path / "none.sock", db)
    pid = wait_until_running(db)["pid"]
    assert pid == ingest.pid
    ingest.kill()
    ingest.wait()
    result = kextlog("status", "--db", str(db))
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(f"ingest: not running (stale state from {time.strftime('%Y')}")
    assert f"pid {pid}" in result.stdout.splitlines()[0]
    assert not read_status(database_url(str(db))).alive


def test_a_cleanly_stopped_daemon_is_stopped(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    ingest = start_ingest(tmp_path / "none.sock", db)
    wait_until_running(db)
    running = kextlog("status", "--db", str(db))
    assert running.returncode == 0 and running.stdout.startswith("ingest: running (pid ")
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=30) == 0
    result = kextlog("status", "--db", str(db))
    assert result.returncode == 3 and result.stdout.startswith("ingest: stopped (pid ")


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "capture"
    path.write_text("6,1,1000,-;one\n")
    return path


def second_sources(second: str, tmp_path: Path, capture: Path) -> list[str]:
    if second == "ingest":
        return ["--source", f"unix:{tmp_path / 'other.sock'}"]
    return ["--source", "kmsg", "--kmsg-path", str(capture), "--kmsg-boot-id", BOOT, "--once"]


@pytest.mark.parametrize("second", ["ingest", "ingest --once"])
def test_a_second_ingest_on_the_same_store_is_refused(
    tmp_path: Path, capture: Path, second: str
) -> None:
    db = tmp_path / "k.db"
    first = start_ingest(tmp_path / "none.sock", db)
    try:
        wait_until_running(db)
        other = start("ingest", "--db", str(db), *second_sources(second, tmp_path, capture))
        try:
            _, err = other.communicate(timeout=30)
        finally:
            other.kill()
        assert other.returncode == 1
        assert err == (
            f"kextlog: error: {db} is in use by another ingest (pid {first.pid}); "
            "one daemon per store\n"
        )
        # The running one's state is its own, and it still runs.
        assert wait_until_running(db)["pid"] == first.pid
        shown = kextlog("status", "--db", str(db))
        assert shown.returncode == 0 and shown.stdout.startswith(
            f"ingest: running (pid {first.pid})"
        )
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    stored = kextlog("sql", "--db", str(db), "-o", "json", "SELECT count(*) AS n FROM log")
    assert stored.stdout == '{"n": 0}\n'  # nothing of the refused one's


def test_a_link_to_a_running_store_is_the_same_store(tmp_path: Path, capture: Path) -> None:
    """The lock and the state are beside the database's real file."""
    db, link = tmp_path / "k.db", tmp_path / "link.db"
    first = start_ingest(tmp_path / "none.sock", db)
    try:
        wait_until_running(db)
        link.symlink_to(db)  # root's own link: followed
        other = kextlog(
            "ingest", "--db", str(link), *second_sources("ingest --once", tmp_path, capture)
        )
        assert refused(other, f"{link} is in use by another ingest (pid {first.pid})"), other.stderr
        shown = kextlog("status", "--db", str(link))
        assert shown.returncode == 0 and shown.stdout.startswith(
            f"ingest: running (pid {first.pid})"
        )
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0


def test_a_second_ingest_on_the_same_producer_is_refused(tmp_path: Path) -> None:
    """Another store, the same socket: the producer serves one client."""
    sock = tmp_path / "sim.sock"
    simulator = start_simulator(sock, "--rate", "100")
    first = start("ingest", "--source", f"unix:{sock}", "--db", str(tmp_path / "a.db"))
    try:
        wait_until_running(tmp_path / "a.db")
        other = start("ingest", "--source", f"unix:{sock}", "--db", str(tmp_path / "b.db"))
        try:
            _, err = other.communicate(timeout=30)
        finally:
            other.kill()
        assert other.returncode == 1
        assert err == (
            f"kextlog: error: unix:{sock} is read by another ingest (pid {first.pid}); "
            "a producer serves one client\n"
        )
    finally:
        first.send_signal(signal.SIGTERM)
        simulator.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
        simulator.communicate(timeout=30)


def test_a_shared_store_has_a_daemon_per_host(
    tmp_path: Path, postgres_database: Callable[[bool], str]
) -> None:
    """A PostgreSQL store: one daemon per host (--host), each with its own
    lock and state under the runtime directory; a second for the same host
    is refused."""
    url = postgres_database(True)
    daemons = {
        host: start("ingest", "--source", f"unix:{tmp_path / f'{host}.sock'}", "--db", url,
                    "--host", host)
        for host in ("alpha", "beta")
    }  # fmt: skip
    try:
        for host, daemon in daemons.items():
            deadline = time.monotonic() + 30
            while (current := read_status(url, host)) is None or not current.alive:
                assert time.monotonic() < deadline, f"ingest --host {host} never published"
                time.sleep(0.05)
            assert current.snapshot["pid"] == daemon.pid
            shown = kextlog("status", "--db", url, "--host", host)
            assert shown.stdout.startswith(f"ingest: running (pid {daemon.pid})"), shown.stdout
        again = start("ingest", "--source", f"unix:{tmp_path / 'c.sock'}", "--db", url,
                      "--host", "beta")  # fmt: skip
        _, err = again.communicate(timeout=60)
        assert again.returncode == 1
        assert err.endswith(
            f"for host beta is in use by another ingest (pid {daemons['beta'].pid}); "
            "one daemon per store\n"
        ), err
    finally:
        for daemon in daemons.values():
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0


HOSTILE_NAME = "kext\x1b[2J\u009b31m\nkextlog: error: forged\r"


def test_producer_text_is_escaped_in_status_and_on_stderr(tmp_path: Path) -> None:
    sock, db, log = tmp_path / "p.sock", tmp_path / "k.db", tmp_path / "ingest.log"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(sock))
    listener.listen(1)
    listener.settimeout(30)
    ingest = start_ingest(sock, db, log=log)
    try:
        connection, _ = listener.accept()
        hello = ffi.new("struct kextlog_hello_frame *")
        length = lib.kextlog_encode_hello(
            hello, uuid.uuid4().bytes, bytes(16), 1, 1, 1000, 1 << 20, 0x010000,
            HOSTILE_NAME.encode(),
        )  # fmt: skip
        connection.sendall(bytes(ffi.buffer(hello, length)))
        connection.settimeout(30)
        connection.recv(64)  # RESUME
        connection.sendall(log_bytes(1))
        deadline = time.monotonic() + 30
        while (shown := kextlog("status", "--db", str(db))).stdout.count("committed seq 1,") != 1:
            assert time.monotonic() < deadline, shown.stdout
            time.sleep(0.05)
    finally:
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(timeout=30) == 0
        listener.close()
    escaped = "kext\\x1b[2J\\u009b31m\\nkextlog: error: forged\\x0d"
    for output in (shown.stdout, log.read_text()):
        assert escaped in output, output
        assert not any(character in output for character in "\x1b\u009b\r")
        assert "\nkextlog: error: forged" not in output


def test_status_of_a_postgresql_store_reads_its_runtime_directory() -> None:
    """The state of a store with no file of its own: under the runtime
    directory, with nothing said about it on stderr."""
    result = kextlog("status", "--db", "postgresql://kextlog:secret@127.0.0.1:1/none")
    assert (result.returncode, result.stderr) == (3, "")
    assert result.stdout.startswith("ingest: never ran on this store")
    assert "secret" not in result.stdout


def test_status_while_ingest_starts(tmp_path: Path) -> None:
    """Between taking the lock and publishing (here it waits for the
    database, which another process holds locked): starting, and never the
    state of the run before, as though it were this one's."""
    db, state = tmp_path / "k.db", tmp_path / "k.db-ingest.json"
    state.write_text(json.dumps(snapshot(pid=os.getpid())))
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # ingest's migration waits (busy timeout: 10 s)
    ingest = start_ingest(tmp_path / "none.sock", db)
    try:
        deadline = time.monotonic() + 30
        while state.exists():  # the new daemon took the lock, and dropped the old state
            assert time.monotonic() < deadline, "the last run's state is still there"
            time.sleep(0.02)
        shown = kextlog("status", "--db", str(db))
        assert (shown.returncode, shown.stdout) == (
            0,
            f"ingest: starting (pid {ingest.pid}), no state published yet\n",
        )
        holder.rollback()
        assert wait_until_running(db)["pid"] == ingest.pid
    finally:
        holder.close()
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(timeout=30) == 0


def test_status_is_never_a_traceback_on_a_state_it_cannot_read(tmp_path: Path) -> None:
    state = tmp_path / "k.db-ingest.json"
    state.mkdir()
    result = kextlog("status", "--db", str(tmp_path / "k.db"))
    assert refused(result, f"{state}"), result.stderr
    assert "Traceback" not in result.stderr

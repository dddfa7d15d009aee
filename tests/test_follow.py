"""--follow: the first output, then what is committed afterwards, promptly;
in the library, as a command (Ctrl-C ends it: exit 130) and behind a real ingest."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kextlog_store.errors import UsageError
from kextlog_store.follow import FOLLOW_LINES, follow
from kextlog_store.levels import Level
from kextlog_store.query import RecordFilter
from kextlog_store.records import Cursor, Entry, Loss, Record
from kextlog_store.store import schema
from kextlog_store.store.engine import Reader, reader
from tests.conftest import NS, ROOT, PopulatedStore, wait_until
from tests.processes import start_ingest, start_simulator, wait_for_socket
from tests.test_cli import marker, short

POLL = 0.05


class Follower:
    """follow() on a thread, its entries handed over through a queue."""

    def __init__(self, engine: Reader, record_filter: RecordFilter) -> None:
        self.stop = threading.Event()
        self.entries: queue.Queue[Entry | BaseException] = queue.Queue()
        found = follow(engine, record_filter, poll_seconds=POLL, stop=self.stop)
        self.thread = threading.Thread(target=self._run, args=(found,), daemon=True)
        self.thread.start()

    def _run(self, found: Iterator[Entry]) -> None:
        try:
            for entry in found:
                self.entries.put(entry)
        except BaseException as exc:  # handed to the test
            self.entries.put(exc)

    def take(self, count: int, timeout: float = 60.0) -> list[Entry]:
        taken = []
        deadline = time.monotonic() + timeout
        while len(taken) < count:
            item = self.entries.get(timeout=max(deadline - time.monotonic(), 0.001))
            if isinstance(item, BaseException):
                raise item
            taken.append(item)
        return taken

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@pytest.fixture
def following(populated: PopulatedStore) -> Iterator[list[Follower]]:
    engine = reader(populated.url)
    started: list[Follower] = []
    yield started
    for follower in started:
        follower.close()
    engine.dispose()


def start_following(
    started: list[Follower], populated: PopulatedStore, **fields: object
) -> Follower:
    follower = Follower(reader(populated.url), RecordFilter(**fields))  # type: ignore[arg-type]
    started.append(follower)
    return follower


class Writer:
    """Commits as ingest does: records by their packed key, losses, instances."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA busy_timeout = 10000")

    def records(self, instance_id: int, uuid: str, *items: tuple[int, int, Level, str]) -> list:
        """(seq, time_ns, level, message) each; returns the Records as query shows them."""
        source, host = self.connection.execute(
            "SELECT source, host FROM instances WHERE id = ?", (instance_id,)
        ).fetchone()
        self.connection.execute("BEGIN")
        for seq, time_ns, level, message in items:
            self.connection.execute(
                "INSERT INTO records (id, time_ns, mono_ns, level, flags, pid, tid, process,"
                " message) VALUES (?, ?, 0, ?, 0, 42, 4200, 'writer', ?)",
                (schema.record_id(instance_id, seq), time_ns, int(level), message),
            )
        self.connection.execute("COMMIT")
        return [
            Record(time_ns, level, 42, 4200, "writer", message, seq, uuid, source, host=host)
            for seq, time_ns, level, message in items
        ]

    def instance(self, instance_id: int, uuid: str, source: str) -> None:
        self.connection.execute(
            "INSERT INTO instances (id, host, uuid, source, name, boot_id, producer_version,"
            " first_seen_ns, last_seen_ns) VALUES (?, 'h', ?, ?, 'n', 'b', 'v', 1, 1)",
            (instance_id, uuid, source),
        )

    def loss(self, instance_id: int, first: int, last: int, time_ns: int) -> None:
        self.connection.execute(
            "INSERT INTO losses (instance_id, first_seq, last_seq, count, first_time_ns,"
            " last_time_ns, reason, recorded_ns) VALUES (?, ?, ?, ?, ?, ?, 'ring-full', ?)",
            (instance_id, first, last, last - first + 1, time_ns, time_ns, time_ns),
        )

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def writer(populated: PopulatedStore) -> Iterator[Writer]:
    writer = Writer(populated.path)
    yield writer
    writer.close()


def assert_nothing_more(
    follower: Follower, writer: Writer, populated: PopulatedStore, seq: int
) -> None:
    """Nothing more was found: a record committed now (of instance 1, seq,
    an error that says "keep") is the next entry.  A wait on that event, not
    a pause that a slow machine could outlast."""
    first = populated.instance(1)
    (sentinel,) = writer.records(
        first.id, first.uuid, (seq, populated.now_ns + 10 * NS, Level.ERROR, "keep: the last")
    )
    assert follower.take(1) == [sentinel]


def test_follow_starts_with_the_last_ten_then_shows_what_is_committed(
    following: list[Follower], populated: PopulatedStore, writer: Writer
) -> None:
    follower = start_following(following, populated)
    assert follower.take(FOLLOW_LINES) == list(populated.records[-FOLLOW_LINES:])
    first, second = populated.instance(1), populated.instance(2)
    now = populated.now_ns
    # Instance 1's new records have lower keys than instance 2's old ones:
    # each instance is followed by its own seqs, not by one rowid.  (Had
    # the first output gone on, take() would return more of it.)
    new = writer.records(first.id, first.uuid, (181, now + NS, Level.INFO, "one"))
    new += writer.records(second.id, second.uuid, (121, now + 2 * NS, Level.ERROR, "two"))
    assert follower.take(2) == new
    later = writer.records(first.id, first.uuid, (182, now + 3 * NS, Level.DEBUG, "three"))
    assert follower.take(1) == later
    assert_nothing_more(follower, writer, populated, 183)


def test_follow_shows_new_losses_and_new_instances(
    following: list[Follower], populated: PopulatedStore, writer: Writer
) -> None:
    # Its first output, the last record, says it has taken its starting point.
    follower = start_following(following, populated, lines=1)
    assert follower.take(1) == list(populated.records[-1:])
    now = populated.now_ns
    writer.loss(2, 121, 125, now + NS)
    writer.instance(3, "3" * 32, "unix:/run/sim-c.sock")
    new = writer.records(3, "3" * 32, (1, now + 2 * NS, Level.WARNING, "new instance"))
    (loss, record) = follower.take(2)
    assert isinstance(loss, Loss) and (loss.instance, loss.first_seq, loss.count) == (
        populated.instance(2).uuid,
        121,
        5,
    )
    assert [record] == new


def test_follow_applies_the_filter_to_new_records(
    following: list[Follower], populated: PopulatedStore, writer: Writer
) -> None:
    first = populated.instance(1)
    now = populated.now_ns
    # The one old record that matches: the first output, after which it follows.
    (old,) = writer.records(first.id, first.uuid, (181, now, Level.ERROR, "keep: old"))
    follower = start_following(
        following, populated, levels=(Level.ERROR, Level.ERROR), grep="keep", lines=2
    )
    assert follower.take(1) == [old]
    writer.records(first.id, first.uuid, (182, now + NS, Level.ERROR, "drop"))
    wanted = writer.records(first.id, first.uuid, (183, now + 2 * NS, Level.ERROR, "keep me"))
    writer.records(first.id, first.uuid, (184, now + 3 * NS, Level.INFO, "keep not"))
    assert follower.take(1) == wanted
    assert_nothing_more(follower, writer, populated, 185)


def test_follow_from_since_or_a_cursor_shows_everything_after_it(
    following: list[Follower], populated: PopulatedStore, writer: Writer
) -> None:
    since = populated.now_ns - 600 * NS
    expected = populated.select(since_ns=since)
    assert len(expected) > FOLLOW_LINES
    follower = start_following(following, populated, since_ns=since)
    assert follower.take(len(expected)) == expected
    start = populated.records[-15]
    follower = start_following(following, populated, after_cursor=Cursor.of(start))
    assert follower.take(14) == list(populated.records[-14:])
    assert_nothing_more(follower, writer, populated, 181)


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"reverse": True}, "cannot be --reverse"), ({"until_ns": 0}, "cannot have --until")],
)
def test_follow_refuses_reverse_and_until(
    populated: PopulatedStore, fields: dict[str, object], message: str
) -> None:
    engine = reader(populated.url)
    with pytest.raises(UsageError, match=message):
        next(follow(engine, RecordFilter(**fields)))  # type: ignore[arg-type]
    engine.dispose()


# --- the command ----------------------------------------------------------------


def kextlog_process(db: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KEXTLOG_DB=str(db), TZ="UTC", NO_COLOR="1")
    return subprocess.Popen(
        [sys.executable, "-m", "kextlog_store.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(process: subprocess.Popen[str], timeout: float = 120.0) -> str:
    """The next line of the process's output; fails after timeout seconds."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True)
    reader.start()
    try:
        return lines.get(timeout=timeout).rstrip("\n")
    except queue.Empty:
        process.kill()
        raise AssertionError(f"no line within {timeout} s") from None


def test_follow_prints_a_new_record_promptly_and_exits_130_on_sigint(
    populated: PopulatedStore, writer: Writer
) -> None:
    process = kextlog_process(populated.path, "query", "-f", "-n", "2", "--show-cursor")
    assert [read_line(process), read_line(process)] == [short(r) for r in populated.records[-2:]]
    first = populated.instance(1)
    (new,) = writer.records(first.id, first.uuid, (181, populated.now_ns + NS, Level.ERROR, "new"))
    # Printed while it runs (no output buffered until exit), nothing before it.
    assert read_line(process) == short(new)
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (130, "")  # as journalctl -f, quietly
    assert out == f"-- cursor: {Cursor.of(new)}\n"


def test_follow_with_a_filter_in_json_into_a_pipe(
    populated: PopulatedStore, writer: Writer
) -> None:
    process = kextlog_process(populated.path, "query", "-f", "-n", "1", "-p", "err", "-o", "json")
    (last_error,) = populated.select(levels={Level.ERROR})[-1:]
    assert json.loads(read_line(process))["message"] == last_error.message  # it follows now
    first = populated.instance(1)
    writer.records(first.id, first.uuid, (181, populated.now_ns + NS, Level.INFO, "not shown"))
    (new,) = writer.records(first.id, first.uuid, (182, populated.now_ns + NS, Level.ERROR, "x"))
    assert json.loads(read_line(process))["message"] == "x" == new.message
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out, err) == (130, "", "")


def test_follow_shows_loss_markers(populated: PopulatedStore, writer: Writer) -> None:
    process = kextlog_process(populated.path, "query", "-f", "-n", "1")
    assert read_line(process) == short(populated.records[-1])
    writer.loss(2, 121, 125, populated.now_ns + NS)
    assert read_line(process) == marker(
        Loss(0, populated.instance(2).uuid, 121, 125, 5, "ring-full", None, None, 0)
    )
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "table"], "-o table aligns its columns over all the rows: it cannot --follow"),
        (["-r"], "--follow shows the newest records last: it cannot be --reverse"),
        (["-U", "1h"], "--follow shows records as they arrive: it cannot have --until"),
    ],
)
def test_follow_errors(populated: PopulatedStore, args: list[str], message: str) -> None:
    process = kextlog_process(populated.path, "query", "-f", *args)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, out) == (2, "")
    assert err == f"kextlog: error: {message}\n"


# --- behind a real ingest ---------------------------------------------------------


@pytest.mark.slow
def test_follow_behind_a_real_ingest(tmp_path: Path) -> None:
    sock, db = tmp_path / "sim.sock", tmp_path / "k.db"
    simulator = start_simulator(sock, "--rate", "50", "--count", "100000")
    ingest = None
    follower = None
    try:
        wait_for_socket(sock)
        ingest = start_ingest(sock, db, log=tmp_path / "log")
        wait_until(lambda: db.exists() and stored_seqs(db), "ingest to store records")
        follower = kextlog_process(db, "query", "-f", "-n", "0", "-o", "json")
        seen = max(stored_seqs(db))
        items = [json.loads(read_line(follower)) for _ in range(20)]
        seqs = [item["seq"] for item in items]
        # Only records committed after it started, each once, in order (one producer).
        assert seqs == list(range(seqs[0], seqs[0] + 20))
        assert seqs[0] > seen - 50  # from where the store was, not from its start
        assert set(seqs) <= set(stored_seqs(db))
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=60) == 130
    finally:
        for process in (follower, ingest, simulator):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)


def stored_seqs(db: Path) -> list[int]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute("SELECT seq FROM records")]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        connection.close()

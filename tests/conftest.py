"""Shared fixtures: temporary databases, a populated store (also one with
losses), the CLI as a subprocess; on SQLite, and on PostgreSQL for modules
that set BOTH_BACKENDS = True.

Every test names its database explicitly (a temporary path, or a database
of the tests' own PostgreSQL server): we run as root, and without --db /
KEXTLOG_DB kextlog would use the system store.

PostgreSQL tests need a server (tests/postgres_server.py starts one per
session).  A test that cannot get what it needs (PostgreSQL, root with
setpriv, a tmpfs mount, a readable /dev/kmsg, systemd-analyze...) calls
unavailable(): skipped with the reason, and in CI (CI=true) failed with it,
so CI never passes a test it did not run.  `make test` installs what they
need first (tests/install-packages.sh).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, insert, text, update

from kextlog_store.levels import Level
from kextlog_store.records import Entry, Loss, Record
from kextlog_store.store import migrate, schema
from kextlog_store.store.engine import write_engine
from kextlog_store.store.location import database_url
from kextlog_store.store.writer import Counts, add_counts
from tests import postgres_server

ROOT = Path(__file__).resolve().parents[1]
NS = 1_000_000_000
HOST = "test-host"  # the fixtures' instances' host
BACKENDS = ("sqlite", "postgresql")

# Property tests: few examples in `make test`; many by hand with
# `pytest --hypothesis-profile=thorough`.  No deadline: the machine is shared.
settings.register_profile("quick", max_examples=40, deadline=None)
settings.register_profile("thorough", max_examples=2_000, deadline=None)
settings.load_profile("quick")

# Relative --since/--until values the tests use; no generated record lies
# within GUARD seconds of one of these ages, so the few seconds between
# building the store and running a query never change the expected rows.
BOUNDARIES_S = (600, 1800, 3600)
GUARD_S = 60

PROCESSES = {
    1: "launchd",
    88: "syslogd",
    312: "mds_stores",
    501: "Finder",
    777: "santad",
    4242: "Google Chrome Helper",
}
MESSAGES = (
    "vnode open {path}",
    "fileop rename {path} -> {path}.bak",
    "process exec {path} (argc=3)",
    'denied "{path}": policy \\strict\\',
    "cache miss for {path}\twill retry",
    "café ✓ {path}",
)
PATHS = ("/usr/bin/true", "/Users/dev/project/main.c", "/private/var/db/x", "/tmp/ü.txt")
LEVEL_WEIGHTS = {
    Level.TRACE: 20,
    Level.DEBUG: 25,
    Level.INFO: 30,
    Level.WARNING: 15,
    Level.ERROR: 10,
}


@dataclass(frozen=True)
class Instance:
    id: int
    uuid: str
    source: str
    count: int
    pid_indexed: int  # its records up to this seq are in pid_index (merged by ingest)


@dataclass(frozen=True)
class LossRow:
    """A row of the losses table, as a test inserts it."""

    instance_id: int
    first_seq: int
    last_seq: int
    reason: str
    first_time_ns: int | None
    last_time_ns: int | None
    recorded_ns: int


@dataclass(frozen=True)
class PopulatedStore:
    path: Path | None  # the SQLite file (None on PostgreSQL)
    url: str
    now_ns: int  # the "now" record times were made relative to
    instances: tuple[Instance, ...]
    records: tuple[Record, ...]  # every stored record, in logged order
    losses: tuple[Loss, ...] = ()  # every stored loss where `kextlog query` places it, in order

    def loss(self, instance_id: int, first_seq: int) -> Loss:
        """The stored loss of instance_id (1 or 2) that starts at first_seq."""
        uuid = self.instances[instance_id - 1].uuid
        (found,) = (x for x in self.losses if (x.instance, x.first_seq) == (uuid, first_seq))
        return found

    def record(self, instance_id: int, seq: int) -> Record:
        """The stored record of instance_id (1 or 2) with seq."""
        uuid = self.instances[instance_id - 1].uuid
        (found,) = (r for r in self.records if (r.instance, r.seq) == (uuid, seq))
        return found

    def instance(self, instance_id: int) -> Instance:
        return self.instances[instance_id - 1]

    def select(
        self,
        *,
        levels: Iterable[Level] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        pids: Iterable[int] | None = None,
        processes: Callable[[str], bool] | None = None,
        messages: Callable[[str], bool] | None = None,
        instances: Iterable[int] | None = None,
        after: tuple[int, int, int] | None = None,
    ) -> list[Record]:
        """The expected result of a filter, computed from the inserted data.
        processes / messages: which names / messages match; instances: the
        fixture's instance ids; after: only records after (time_ns, instance
        id, seq) in logged order (a cursor's place; seq - 1 includes it)."""
        wanted_levels = None if levels is None else set(levels)
        wanted_pids = None if pids is None else set(pids)
        wanted_instances = (
            None if instances is None else {self.instance(i).uuid for i in set(instances)}
        )
        ids = {instance.uuid: instance.id for instance in self.instances}
        return [
            record
            for record in self.records
            if (wanted_levels is None or record.level in wanted_levels)
            and (since_ns is None or record.time_ns >= since_ns)
            and (until_ns is None or record.time_ns <= until_ns)
            and (wanted_pids is None or record.pid in wanted_pids)
            and (processes is None or processes(record.process))
            and (messages is None or messages(record.message))
            and (wanted_instances is None or record.instance in wanted_instances)
            and (after is None or (record.time_ns, ids[record.instance], record.seq) > after)
        ]

    def entries(
        self,
        *,
        lines: int | None = None,
        reverse: bool = False,
        **selection: Any,
    ) -> list[Entry]:
        """The expected output of `kextlog query`, computed from the inserted
        data: the selected records (select()'s arguments) and the losses
        placed within the window (and of the instances asked for, after the
        cursor's time), a loss before records of its time; with lines, the
        tail of that starting at the lines-th last record (all of it when
        fewer match); reverse: all that backwards."""
        ids = {instance.uuid: instance.id for instance in self.instances}
        chosen = self.select(**selection)
        since_ns, until_ns = selection.get("since_ns"), selection.get("until_ns")
        instances = selection.get("instances")
        after = selection.get("after")
        markers = [
            loss
            for loss in self.losses
            if (since_ns is None or loss.time_ns >= since_ns)
            and (until_ns is None or loss.time_ns <= until_ns)
            and (instances is None or ids[loss.instance] in set(instances))
            and (after is None or loss.time_ns > after[0])
        ]

        def key(entry: Entry) -> tuple[int, int, int, int]:
            if isinstance(entry, Loss):
                return (entry.time_ns, 0, ids[entry.instance], entry.first_seq)
            return (entry.time_ns, 1, ids[entry.instance], entry.seq)

        merged: list[Entry] = sorted([*chosen, *markers], key=key)
        if lines == 0:
            merged = []
        elif lines is not None and len(chosen) > lines:
            merged = merged[merged.index(chosen[-lines]) :]
        return merged[::-1] if reverse else merged


def _age_s(rng: random.Random) -> float:
    """A record age in seconds, within three hours, away from BOUNDARIES_S."""
    while True:
        age = rng.uniform(5, 3 * 3600)
        if all(abs(age - boundary) > GUARD_S for boundary in BOUNDARIES_S):
            return age


def make_records(now_ns: int) -> tuple[tuple[Instance, ...], list[Record]]:
    """Deterministic records of two instances, in no particular order."""
    rng = random.Random(20261127)
    # Instance 1's uuid sorts after instance 2's: ties must order by instance
    # id (the order they were logged in the store), not by uuid text.
    instances = (
        # Ingest has merged only part of instance 1 into pid_index: a pid
        # search reads both the index and the records after it.
        Instance(
            1, "f" + uuid.UUID(int=rng.getrandbits(128)).hex[1:], "unix:/run/sim-a.sock", 180, 150
        ),
        Instance(
            2, "0" + uuid.UUID(int=rng.getrandbits(128)).hex[1:], "unix:/run/sim-b.sock", 120, 120
        ),
    )
    levels = list(LEVEL_WEIGHTS)
    weights = list(LEVEL_WEIGHTS.values())
    times: dict[int, list[int]] = {}
    for instance in instances:
        ages = [_age_s(rng) for _ in range(instance.count - 4)]
        ages += [30.5, 90.25, 200.0, 400.75]  # recent records, so --since 10m is never empty
        times[instance.id] = sorted(now_ns - int(age * NS) for age in ages)
    # Exact ties: across instances, and within one instance (consecutive seqs).
    times[2][10] = times[1][40]
    times[2][60] = times[1][100]
    times[1][70] = times[1][69]
    times[2].sort()
    # The four most recent records of instance 1 have fixed levels and pid 312.
    fixed = {177: Level.ERROR, 178: Level.WARNING, 179: Level.ERROR, 180: Level.INFO}
    records: list[Record] = []
    for instance in instances:
        for seq, time_ns in enumerate(times[instance.id], start=1):
            pid = rng.choice(list(PROCESSES))
            level = rng.choices(levels, weights)[0]
            if instance.id == 1 and seq in fixed:
                pid, level = 312, fixed[seq]
            records.append(
                Record(
                    time_ns=time_ns,
                    level=level,
                    pid=pid,
                    tid=2**40 + seq if seq == 5 else pid * 100 + rng.randrange(4),
                    process=PROCESSES[pid],
                    message=rng.choice(MESSAGES).format(path=rng.choice(PATHS)) + f" #{seq}",
                    seq=seq,
                    instance=instance.uuid,
                    source=instance.source,
                    flags=1 if seq % 17 == 0 else 0,
                    host=HOST,
                )
            )
    return instances, records


def insert_records(url: str, instances: Iterable[Instance], records: Iterable[Record]) -> None:
    """Insert through the store's tables, as ingest does: the key packs
    (instance, seq); pid_index holds each instance's records up to its
    pid_indexed seq; record_counts counts them."""
    instances, records = tuple(instances), tuple(records)
    by_uuid = {instance.uuid: instance for instance in instances}
    rows = [
        {
            "id": schema.record_id(by_uuid[record.instance].id, record.seq),
            "time_ns": record.time_ns,
            "mono_ns": record.time_ns % 10**13,
            "level": int(record.level),
            "flags": record.flags,
            "pid": record.pid,
            "tid": record.tid,
            "process": record.process,
            "message": record.message,
        }
        for record in records
    ]
    indexed = [
        {"pid": row["pid"], "time_ns": row["time_ns"], "id": row["id"]}
        for row, record in zip(rows, records, strict=True)
        if record.seq <= by_uuid[record.instance].pid_indexed
    ]
    engine = write_engine(url)
    with engine.begin() as connection:
        for instance in instances:
            connection.execute(
                insert(schema.instances).values(
                    id=instance.id,
                    host=HOST,
                    uuid=instance.uuid,
                    source=instance.source,
                    name="com.example.kextlog.sim",
                    boot_id="boot-1",
                    producer_version="0.1.0",
                    first_seen_ns=0,
                    last_seen_ns=0,
                    high_water=instance.count,
                    pid_indexed_seq=instance.pid_indexed,
                )
            )
        if rows:
            connection.execute(insert(schema.records), rows)
            # The records' counters, as the writer keeps them.
            counts = Counts()
            for row in rows:
                instance_id = row["id"] >> schema.SEQ_BITS
                minute = row["time_ns"] // schema.NS_PER_MINUTE
                counts.minutes[minute, row["level"], instance_id] += 1
                counts.pids[row["pid"], row["process"], instance_id] += 1
            add_counts(connection, counts)
        if indexed:
            connection.execute(insert(schema.pid_index), indexed)
        if connection.dialect.name == "postgresql":
            # As if the database had handed out these ids.
            connection.execute(
                text("SELECT setval(pg_get_serial_sequence('instances', 'id'), max(id))"
                     " FROM instances")
            )  # fmt: skip
    engine.dispose()


def insert_losses(url: str, rows: Iterable[LossRow]) -> None:
    """Insert losses as ingest does, and raise each instance's high-water mark
    over them."""
    rows = tuple(rows)
    engine = write_engine(url)
    with engine.begin() as connection:
        for row in rows:
            connection.execute(
                insert(schema.losses).values(
                    instance_id=row.instance_id,
                    first_seq=row.first_seq,
                    last_seq=row.last_seq,
                    count=row.last_seq - row.first_seq + 1,
                    first_time_ns=row.first_time_ns,
                    last_time_ns=row.last_time_ns,
                    reason=row.reason,
                    recorded_ns=row.recorded_ns,
                )
            )
            connection.execute(
                update(schema.instances)
                .where(
                    schema.instances.c.id == row.instance_id,
                    schema.instances.c.high_water < row.last_seq,
                )
                .values(high_water=row.last_seq)
            )
    engine.dispose()


def placed(row: LossRow, instances: Iterable[Instance], stored: Iterable[Record]) -> Loss:
    """The loss as `kextlog query` shows it: at its first missing record's
    time; unknown, at the instance's first stored record after it; none,
    at the time it was recorded."""
    instance = next(instance for instance in instances if instance.id == row.instance_id)
    later = sorted(
        (record.seq, record.time_ns)
        for record in stored
        if record.instance == instance.uuid and record.seq > row.last_seq
    )
    if row.first_time_ns is not None:
        time_ns = row.first_time_ns
    elif later:
        time_ns = later[0][1]
    else:
        time_ns = row.recorded_ns
    return Loss(
        time_ns=time_ns,
        instance=instance.uuid,
        first_seq=row.first_seq,
        last_seq=row.last_seq,
        count=row.last_seq - row.first_seq + 1,
        reason=row.reason,
        first_time_ns=row.first_time_ns,
        last_time_ns=row.last_time_ns,
        recorded_ns=row.recorded_ns,
        source=instance.source,
    )


def logged_order(instances: Iterable[Instance], records: Iterable[Record]) -> tuple[Record, ...]:
    """Records sorted as kextlog shows them: time, then instance id, then seq."""
    ids = {instance.uuid: instance.id for instance in instances}
    return tuple(sorted(records, key=lambda r: (r.time_ns, ids[r.instance], r.seq)))


def content_checksum(path: Path) -> str:
    """A digest of every row of every table and the schema, read read-only."""
    import hashlib

    digest = hashlib.sha256()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for line in connection.iterdump():
            digest.update(line.encode())
        for pragma in ("user_version", "journal_mode", "auto_vacuum", "page_count"):
            digest.update(repr(connection.execute(f"PRAGMA {pragma}").fetchall()).encode())
    finally:
        connection.close()
    return digest.hexdigest()


@pytest.fixture
def system_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The process's local zone is Asia/Kolkata (+05:30, no DST) for the test."""
    if not hasattr(time, "tzset"):
        unavailable("needs time.tzset")
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield "+05:30"
    monkeypatch.undo()
    time.tzset()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with BOTH_BACKENDS = True runs its tests that use a store on
    SQLite and on PostgreSQL, but those marked sqlite_only (and those that
    name their back ends themselves)."""
    named = any(
        "backend" in str(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize")
    )
    if (
        "backend" in metafunc.fixturenames
        and getattr(metafunc.module, "BOTH_BACKENDS", False)
        and metafunc.definition.get_closest_marker("sqlite_only") is None
        and not named
    ):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The back end of the test's store: sqlite unless parametrized."""
    return getattr(request, "param", "sqlite")


def wait_until(condition: Callable[[], object], what: str, timeout: float = 120.0) -> None:
    """Until condition() is true: a wait on an event, checked every few
    milliseconds, with a deadline generous enough for a loaded machine
    (it only bounds how long a failure takes to show)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}", pytrace=False)
        time.sleep(0.02)


def unavailable(reason: str) -> NoReturn:
    """The test cannot run here, for reason: skipped, but failed in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.Server]:
    """The session's PostgreSQL server, with a template database at the
    newest revision (kextlog_template)."""
    if importlib.util.find_spec("psycopg") is None:
        unavailable("PostgreSQL: the psycopg driver is not installed (pip install -e '.[dev]')")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_server.running())
        except postgres_server.PostgresUnavailable as exc:
            unavailable(f"PostgreSQL unavailable: {exc}")
        admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
        stack.callback(admin.dispose)
        with admin.connect() as connection:
            connection.exec_driver_sql("CREATE DATABASE kextlog_template")
        migrate.upgrade(server.url("kextlog_template")).dispose()
        yield server


_databases = itertools.count(1)


@pytest.fixture
def postgres_database(
    postgres: postgres_server.Server,
) -> Iterator[Callable[[bool], str]]:
    """Makes fresh databases for one test: new(migrated) -> URL; migrated
    ones are copies of the template.  All are dropped afterwards."""
    admin = create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def new(migrated: bool = True) -> str:
        name = f"test_{os.getpid()}_{next(_databases)}"
        template = " TEMPLATE kextlog_template" if migrated else ""
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}{template}")
        made.append(name)
        return postgres.url(name)

    yield new
    with admin.connect() as connection:
        for name in made:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB file system of its own (tmpfs: we run as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a small file system (tmpfs, as root): {mounted.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.fixture(scope="session")
def schema_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the newest revision, made once and copied per test."""
    path = tmp_path_factory.mktemp("template") / "kextlog.db"
    migrate.upgrade(database_url(str(path))).dispose()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A temporary database path; nothing is created there."""
    return tmp_path / "kextlog.db"


@pytest.fixture
def db_url(db_path: Path) -> str:
    """The URL of db_path."""
    return database_url(str(db_path))


@pytest.fixture
def empty_store(schema_template: Path, db_path: Path) -> Path:
    """A migrated database without records."""
    shutil.copyfile(schema_template, db_path)
    return db_path


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A migrated store without records, on the test's back end: the SQLite
    one is empty_store (at db_path)."""
    if backend == "postgresql":
        return request.getfixturevalue("postgres_database")()
    request.getfixturevalue("empty_store")
    return request.getfixturevalue("db_url")


def _file(backend: str, db_path: Path) -> Path | None:
    return db_path if backend == "sqlite" else None


@pytest.fixture
def populated(store_url: str, backend: str, db_path: Path) -> PopulatedStore:
    """Three hundred records of two instances, at all levels, from six pids,
    over the three hours before now."""
    now_ns = time.time_ns()
    instances, records = make_records(now_ns)
    insert_records(store_url, instances, records)
    return PopulatedStore(
        _file(backend, db_path), store_url, now_ns, instances, logged_order(instances, records)
    )


@pytest.fixture
def lossy(store_url: str, backend: str, db_path: Path) -> PopulatedStore:
    """The populated store's records with some missing, and a loss row for
    (almost) each gap, of every reason, with known and unknown times:

    instance 1 seqs 1..3    released, time unknown; seqs 4..6 were pruned (no
                            loss; counted in pruned_records), so it belongs
                            before seq 7, about 3 h ago
    instance 2 seqs 24..25  ring full, known time: the time of instance 1 seq
                            41 (a tie across instances), about 2 h 20 m ago
    instance 1 seqs 50..52  ring full, known time, about 2 h 15 m ago
    instance 2 seqs 55..60  released, time unknown: before instance 2 seq 61,
                            which ties with instance 1 seq 101, about 1 h 20 m ago
    instance 1 seqs 150..151 ring full, known time, about 18 m ago
    instance 2 seqs 110..111 gap, time unknown: before instance 2 seq 112
                            (pid 4242, debug), about 8 m ago
    instance 1 seq 181      ring full, 3 s ago, after every record
    instance 2 seqs 121..125 gap, time unknown, no later record: at the time
                            it was recorded, 1 s ago
    """
    now_ns = time.time_ns()
    instances, made = make_records(now_ns)
    first, second = instances
    by_key = {(record.instance, record.seq): record for record in made}

    def at(instance: Instance, seq: int) -> int:
        return by_key[(instance.uuid, seq)].time_ns

    assert at(second, 24) == at(first, 41) and at(second, 61) == at(first, 101)
    recorded = now_ns - NS
    rows = (
        LossRow(1, 1, 3, "released", None, None, recorded),
        LossRow(2, 24, 25, "ring-full", at(second, 24), at(second, 25), recorded),
        LossRow(1, 50, 52, "ring-full", at(first, 50), at(first, 52), recorded),
        LossRow(2, 55, 60, "released", None, None, recorded),
        LossRow(1, 150, 151, "ring-full", at(first, 150), at(first, 151), recorded),
        LossRow(2, 110, 111, "gap", None, None, recorded),
        LossRow(1, 181, 181, "ring-full", now_ns - 3 * NS, now_ns - 3 * NS, recorded),
        LossRow(2, 121, 125, "gap", None, None, recorded),
    )
    ids = {instance.id: instance.uuid for instance in instances}
    ids_of = {instance.uuid: instance.id for instance in instances}
    missing = {
        (ids[row.instance_id], seq)
        for row in rows
        for seq in range(row.first_seq, row.last_seq + 1)
    }
    missing |= {(first.uuid, seq) for seq in (4, 5, 6)}  # pruned
    kept = [record for record in made if (record.instance, record.seq) not in missing]
    insert_records(store_url, instances, kept)
    insert_losses(store_url, rows)
    engine = write_engine(store_url)
    with engine.begin() as connection:  # as prune counts what it removes
        connection.execute(
            update(schema.instances).where(schema.instances.c.id == 1).values(pruned_records=3)
        )
    engine.dispose()
    losses = sorted(
        (placed(row, instances, kept) for row in rows),
        key=lambda loss: (loss.time_ns, ids_of[loss.instance], loss.first_seq),
    )
    return PopulatedStore(
        _file(backend, db_path),
        store_url,
        now_ns,
        instances,
        logged_order(instances, kept),
        tuple(losses),
    )


Kextlog = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kextlog(db_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Kextlog]:
    """Run `python -m kextlog_store.cli ARGS` with KEXTLOG_DB=db_path (on
    PostgreSQL: store_url) and TZ=UTC."""
    database = str(db_path) if backend == "sqlite" else request.getfixturevalue("store_url")

    def run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "KEXTLOG_DB": database,
            "TZ": "UTC",
            "NO_COLOR": "1",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-m", "kextlog_store.cli", *args],
            env=environment,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    yield run

"""The store: where it lives (URLs), and the writer's registration and
commits, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from kextlog_store._native import lib
from kextlog_store.errors import DatabaseError
from kextlog_store.store import schema
from kextlog_store.store.engine import write_engine
from kextlog_store.store.location import database_url
from kextlog_store.store.writer import InstanceState, Writer

BOTH_BACKENDS = True


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("postgresql://kextlog@db/kextlog", "postgresql+psycopg://kextlog@db/kextlog"),
        ("postgres://kextlog@db/kextlog", "postgresql+psycopg://kextlog@db/kextlog"),
        ("postgresql+psycopg://k@/x?host=/run", "postgresql+psycopg://k@/x?host=/run"),
        ("sqlite:////var/k.db", "sqlite:////var/k.db"),
    ],
)
def test_database_urls(value: str, url: str) -> None:
    assert database_url(value) == url


def test_a_missing_driver_is_a_one_line_error() -> None:
    with pytest.raises(DatabaseError, match="no driver for this database") as caught:
        write_engine("mysql+mysqldb://someone:secret@db/kextlog")
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = write_engine(store_url)
    yield engine
    engine.dispose()


def register(writer: Writer, uuid: str) -> InstanceState:
    return writer.register(
        uuid, first_seq=1, source="unix:/s", name="n", boot_id="b", producer_version="v",
        now_ns=1,
    )  # fmt: skip


def test_registration_is_race_free_and_per_host(engine: Engine) -> None:
    uuid = "ab" * 16
    states: list[InstanceState] = []
    start = threading.Barrier(6)

    def daemon() -> None:
        writer = Writer(engine, host="alpha")
        start.wait()
        states.append(register(writer, uuid))

    threads = [threading.Thread(target=daemon) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({state.id for state in states}) == 1  # one instance, whoever came first
    other = register(Writer(engine, host="beta"), uuid)
    assert other.id != states[0].id
    with engine.connect() as connection:
        hosts = connection.execute(
            select(schema.instances.c.host, func.count()).group_by(schema.instances.c.host)
        ).all()
    assert sorted(hosts) == [("alpha", 1), ("beta", 1)]


def test_commits_and_what_registration_finds_again(engine: Engine) -> None:
    writer = Writer(engine, host="h")
    state = register(writer, "cd" * 16)
    rows = [
        (seq, seq * 1000, seq, 3, 0, 42, 4242, "proc", f"message {seq}\x00with a NUL")
        for seq in (1, 2, 3)
    ]
    loss = {
        "instance_id": state.id, "first_seq": 4, "last_seq": 5, "count": 2,
        "first_time_ns": None, "last_time_ns": None, "reason": "gap", "recorded_ns": 9,
    }  # fmt: skip
    state.high_water = 5
    writer.commit({state.id: rows}, [loss], [state], now_ns=10)
    writer.commit({}, [loss], [state], now_ns=11)  # a loss recorded again is stored once
    with engine.connect() as connection:
        stored = connection.execute(
            select(schema.records.c.seq, schema.records.c.message).order_by(schema.records.c.id)
        ).all()
        losses = connection.execute(select(func.count()).select_from(schema.losses)).scalar()
    # PostgreSQL's text cannot hold NUL: it becomes U+FFFD there.
    nul = "\x00" if engine.dialect.name == "sqlite" else "\ufffd"
    assert stored == [(seq, f"message {seq}{nul}with a NUL") for seq in (1, 2, 3)]
    assert losses == 1
    again = register(Writer(engine, host="h"), "cd" * 16)
    assert (again.id, again.high_water, again.lost) == (state.id, 5, 2)
    assert type(again.lost) is int
    known = writer.known("cd" * 16)
    assert known is not None and (known.high_water, known.source) == (5, "unix:/s")
    assert Writer(engine, host="elsewhere").known("cd" * 16) is None


def test_kernel_log_rows_carry_their_own_columns(engine: Engine) -> None:
    writer = Writer(engine, host="h")
    state = writer.register(
        "ef" * 16, first_seq=0, source="kmsg", name="linux", boot_id="b",
        producer_version="6", now_ns=1,
    )  # fmt: skip
    row = (0, 5, 6, 3, 0, 0, 0, "kernel", "eth0: link up", 6, 0, '{"SUBSYSTEM": "net"}')
    state.high_water = 0
    writer.commit({state.id: [row]}, [], [state], now_ns=2)
    with engine.connect() as connection:
        stored = connection.execute(
            select(
                schema.records.c.seq,
                schema.records.c.message,
                schema.records.c.syslog_priority,
                schema.records.c.facility,
                schema.records.c.fields,
            )
        ).all()
    assert stored == [(0, "eth0: link up", 6, 0, '{"SUBSYSTEM": "net"}')]


def test_the_key_packing_is_the_wire_headers() -> None:
    # store/schema.py writes the bounds as numbers (reading loads no cffi): the header's.
    assert (schema.SEQ_BITS, schema.SEQ_MASK, schema.INSTANCES_MAX) == (
        lib.KEXTLOG_SEQ_BITS,
        lib.KEXTLOG_SEQ_MAX,
        lib.KEXTLOG_INSTANCES_MAX,
    )

"""Sources: naming them, and connecting with the socket type the producer
accepts.  Unix sockets are real here; the macOS kernel control is not, so its
pure logic runs against a stand-in socket that answers as XNU's does.  A
device source reads a real character device: a pseudo-terminal carrying the
simulator's stream (/dev/kextlog itself runs in kmod/tests, in qemu)."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import tty
from pathlib import Path

import pytest

from kextlog_store.errors import SourceError, UsageError
from kextlog_store.sources import DeviceSource, KctlSource, UnixSource, parse_source
from tests.processes import connect, start, start_simulator
from tests.test_delivery import accounting, integrity, stop

PF_SYSTEM, SYSPROTO_CONTROL = 32, 2  # <sys/socket.h>, <sys/sys_domain.h> on macOS


class StandInSocket:
    """Answers connect() with the errno each socket type gets from a control."""

    def __init__(self, answers: dict[int, int | None], calls: list) -> None:
        self.answers, self.calls = answers, calls

    def __call__(self, family: int, kind: int, protocol: int) -> StandInSocket:
        self.calls.append((family, kind, protocol))
        self.kind = kind
        return self

    def connect(self, address: object) -> None:
        self.calls.append(("connect", address))
        code = self.answers[self.kind]
        if code is not None:
            raise OSError(code, os.strerror(code))

    def setsockopt(self, *args: object) -> None:
        pass

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def macos_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "PF_SYSTEM", PF_SYSTEM, raising=False)
    monkeypatch.setattr(socket, "SYSPROTO_CONTROL", SYSPROTO_CONTROL, raising=False)


def test_unix_dev_and_kctl_specs(macos_socket: None) -> None:
    assert parse_source("unix:/run/k.sock") == UnixSource("unix:/run/k.sock", "/run/k.sock")
    assert parse_source("dev:/dev/kextlog") == DeviceSource("dev:/dev/kextlog", "/dev/kextlog")
    assert parse_source("kctl:com.example.log") == KctlSource(
        "kctl:com.example.log", "com.example.log"
    )


@pytest.mark.parametrize("spec", ["tcp:1.2.3.4", "unix:", "dev:", "kctl:", "nothing"])
def test_unknown_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError, match="expected kmsg, unix:PATH, dev:PATH or kctl:NAME"):
        parse_source(spec)


def test_kctl_names_fit_the_kernel(macos_socket: None) -> None:
    with pytest.raises(UsageError, match="shorter than 96 bytes"):
        parse_source("kctl:" + "x" * 96)


@pytest.mark.skipif(hasattr(socket, "PF_SYSTEM"), reason="this is macOS")
def test_kctl_elsewhere_says_it_needs_macos() -> None:
    with pytest.raises(UsageError, match="only on macOS"):
        parse_source("kctl:com.example.log")


def test_kctl_connects_by_name_as_a_datagram_control(macos_socket: None) -> None:
    calls: list = []
    source = KctlSource("kctl:com.example.log", "com.example.log", StandInSocket({
        socket.SOCK_DGRAM: None}, calls))  # fmt: skip
    connection = source.connect()
    assert calls == [
        (PF_SYSTEM, socket.SOCK_DGRAM, SYSPROTO_CONTROL),
        ("connect", "com.example.log"),
    ]
    assert connection._datagrams


def test_kctl_falls_back_to_a_stream_control(macos_socket: None) -> None:
    calls: list = []
    answers = {socket.SOCK_DGRAM: errno.EPROTOTYPE, socket.SOCK_STREAM: None}
    source = KctlSource("kctl:c", "c", StandInSocket(answers, calls))
    connection = source.connect()
    assert [call[1] for call in calls if isinstance(call, tuple) and len(call) == 3] == [
        socket.SOCK_DGRAM,
        socket.SOCK_STREAM,
    ]
    assert "close" in calls  # the refused datagram socket was closed
    assert not connection._datagrams


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (errno.ENOENT, "is the kext loaded?"),
        (errno.EPERM, "run ingest as root"),
        (errno.EISCONN, "another client is connected"),
        (errno.ECONNREFUSED, "Connection refused"),
    ],
)
def test_kctl_connect_errors_are_explained(macos_socket: None, code: int, meaning: str) -> None:
    source = KctlSource("kctl:c", "c", StandInSocket({socket.SOCK_DGRAM: code}, []))
    with pytest.raises(SourceError, match=meaning) as raised:
        source.connect()
    assert str(raised.value).startswith("kctl:c: ")


def test_unix_source_that_is_missing(tmp_path: Path) -> None:
    source = parse_source(f"unix:{tmp_path}/none.sock")
    with pytest.raises(SourceError, match="No such file or directory"):
        source.connect()


def test_unix_source_takes_the_listeners_socket_type(tmp_path: Path) -> None:
    for kind, datagrams in ((socket.SOCK_SEQPACKET, True), (socket.SOCK_STREAM, False)):
        path = tmp_path / f"{kind}.sock"
        listener = socket.socket(socket.AF_UNIX, kind)
        listener.bind(str(path))
        listener.listen()
        connection = parse_source(f"unix:{path}").connect()
        assert connection._datagrams is datagrams
        connection.close()
        listener.close()


def test_a_device_that_is_missing_asks_for_the_module(tmp_path: Path) -> None:
    source = parse_source(f"dev:{tmp_path}/kextlog")
    with pytest.raises(
        SourceError, match=r"^dev:.*: no such device: is the kextlog module loaded\?"
    ):
        source.connect()


def relay(producer: socket.socket, terminal: int) -> None:
    """Copies between the producer and a pseudo-terminal's master side until
    the producer goes, as kmod's guest relay copies to /dev/kextlog."""
    with producer, contextlib.suppress(ConnectionError):  # it went
        while True:
            ready, _, _ = select.select([producer, terminal], [], [])
            if producer in ready:
                data = producer.recv(65536)
                if not data:
                    return
                os.write(terminal, data)  # waits while the reader is behind
            if terminal in ready:
                producer.sendall(os.read(terminal, 65536))


def test_a_device_source_stores_every_record_once(tmp_path: Path) -> None:
    """The real ingest reads the protocol from a character device (a raw
    pseudo-terminal: a stream that splits frames anywhere) and writes its
    RESUME and ACKs back into it."""
    sock, db, count = tmp_path / "sim.sock", tmp_path / "k.db", 20_000
    simulator = start_simulator(
        sock, "--socket-type", "stream", "--rate", "0",
        "--count", str(count), log=tmp_path / "sim.log",
    )  # fmt: skip
    master, slave = os.openpty()
    tty.setraw(slave)  # bytes as they are: no echo, no line editing
    ingest = start(
        "ingest", "--source", f"dev:{os.ttyname(slave)}", "--db", str(db),
        log=tmp_path / "ingest.log",
    )  # fmt: skip
    copier = threading.Thread(
        target=relay, args=(connect(sock, socket.SOCK_STREAM), master), daemon=True
    )
    copier.start()
    simulator.communicate(timeout=120)  # ends once all is acknowledged
    assert simulator.returncode == 0
    stop(ingest)
    copier.join(timeout=30)
    os.close(master)
    os.close(slave)
    (instance,) = accounting(db).values()
    assert instance["stored"] == list(range(1, count + 1))
    assert instance["losses"] == []
    assert integrity(db) == "ok"

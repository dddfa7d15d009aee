"""Where frames come from.

A source names a producer: `kctl:NAME` (a kext's kernel control, macOS),
`dev:PATH` (a character device: /dev/kextlog of the Linux module, kmod/),
`unix:PATH` (the simulator, or any producer of the protocol) or `kmsg` (the
Linux kernel's own log, in kmsg.py).  Connecting gives a Connection: it reads
what the producer sends, decodes it with its reader, and answers RESUME and
ACK.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .errors import SourceClosed, SourceError, UsageError
from .kmsg import DEVICE, KmsgSource
from .paths import trusted_users, user_name
from .wire import Frame, FrameReader, encode_ack, encode_resume

RECEIVE_BYTES = 256 * 1024  # more than any datagram the producer sends (the seed's caveat)
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # room for bursts while the writer commits


class Connection:
    """One connection to a producer; closing it is the producer's disconnect.
    Its FrameReader decodes what receive() returns, in one thread at a time."""

    def __init__(self, sock: socket.socket, datagrams: bool) -> None:
        self._socket = sock
        self._datagrams = datagrams
        self.reader = FrameReader()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)

    def fileno(self) -> int:
        return self._socket.fileno()

    def _take(self) -> bytes:
        """What has arrived, without waiting (BlockingIOError: nothing)."""
        return self._socket.recv(RECEIVE_BYTES, socket.MSG_DONTWAIT)

    def _give(self, data: bytes) -> None:
        self._socket.sendall(data)

    def receive(self, timeout: float) -> list[bytes]:
        """What arrived within timeout seconds (maybe nothing): every datagram
        waiting, or the stream's bytes, up to RECEIVE_BYTES in all.  A kext
        sends a datagram per message it logs: taking them in one go keeps
        the work per record small."""
        ready, _, _ = select.select([self], [], [], timeout)
        if not ready:
            return []
        chunks, size = [], 0
        while size < RECEIVE_BYTES:
            try:
                data = self._take()
            except BlockingIOError:
                break
            if not data:
                if chunks:
                    break  # the rest first; the end comes with the next call
                raise SourceClosed("the producer closed the connection")
            # A datagram longer than RECEIVE_BYTES comes cut: its cut frame
            # is skipped as truncated, like any other (decode).
            chunks.append(data)
            size += len(data)
        return chunks

    def decode(self, received: list[bytes] | None) -> list[Frame]:
        """The frames of what receive() returned; None once the producer has
        closed the connection (a frame it left incomplete is truncated)."""
        if received is None:
            return self.reader.finish()
        if self._datagrams:
            return self.reader.feed_datagrams(received)
        return self.reader.feed(b"".join(received))

    def read(self, timeout: float) -> list[Frame]:
        """The frames that arrived within timeout seconds (maybe none)."""
        return self.decode(self.receive(timeout))

    def resume(self, instance_raw: bytes, seq: int) -> None:
        self._give(encode_resume(instance_raw, seq))

    def ack(self, seq: int) -> None:
        self._give(encode_ack(seq))

    def close(self) -> None:
        self._socket.close()

    def peer_uid(self) -> int:
        """The user the producer runs as, as the kernel says (a Unix socket's
        peer credentials, taken when it connected)."""
        if sys.platform == "darwin":  # SOL_LOCAL, LOCAL_PEERCRED: struct xucred
            data = self._socket.getsockopt(0, 0x001, struct.calcsize("IIh16I"))
            return struct.unpack_from("I", data, 4)[0]  # cr_uid, after cr_version
        data = self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        return struct.unpack("3i", data)[1]  # struct ucred: pid, uid, gid


class DeviceConnection(Connection):
    """A connection through a device opened for reading and writing: a
    stream of frames, as from a SOCK_STREAM control (/dev/kextlog returns
    whole frames, a special case of it)."""

    def __init__(self, fd: int) -> None:  # no socket: its own file descriptor
        self._fd = fd
        self._datagrams = False
        self.reader = FrameReader()

    def fileno(self) -> int:
        return self._fd

    def _take(self) -> bytes:
        try:
            return os.read(self._fd, RECEIVE_BYTES)
        except OSError as error:
            if error.errno == errno.EIO:  # a terminal whose other end closed
                return b""
            raise

    def _give(self, data: bytes) -> None:
        while data:
            data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        os.close(self._fd)


SocketFactory = Callable[[int, int, int], socket.socket]


def connect_either(
    spec: str,
    family: int,
    protocol: int,
    address: object,
    kinds: tuple[int, int],
    explain: Callable[[OSError], str],
    make_socket: SocketFactory = socket.socket,
) -> Connection:
    """Connects with the first socket type the producer accepts: a kernel
    control, and our Unix producers like it, answer EPROTOTYPE to the other.
    The first kind is the datagram one."""
    for kind in kinds:
        sock = make_socket(family, kind, protocol)
        try:
            sock.connect(address)
        except OSError as error:
            sock.close()
            if error.errno == errno.EPROTOTYPE:
                continue
            raise SourceError(f"{spec}: {explain(error)}") from None
        return Connection(sock, datagrams=kind == kinds[0])
    raise SourceError(f"{spec}: the producer accepts neither socket type")


@dataclass(frozen=True)
class UnixSource:
    """A Unix socket served by the simulator or any producer of the protocol:
    seqpacket stands for a SOCK_DGRAM kernel control, stream for SOCK_STREAM."""

    spec: str
    path: str

    def connect(self) -> Connection:
        """A connection to the producer, if it runs as root or as ingest's
        own user: as root, ingest may connect to any socket, also one
        another user put where the producer's should be."""
        connection = connect_either(
            self.spec,
            socket.AF_UNIX,
            0,
            self.path,
            (socket.SOCK_SEQPACKET, socket.SOCK_STREAM),
            lambda error: error.strerror or str(error),
        )
        uid = connection.peer_uid()
        if uid not in trusted_users():
            connection.close()
            raise SourceError(
                f"{self.spec}: the producer runs as {user_name(uid)}, not as root or "
                f"{user_name(os.geteuid())}: refused"
            )
        return connection


# What a device's open errors mean (see kmod/kextlog_linux.c).
DEVICE_ERRORS = {
    errno.ENOENT: "no such device: is the kextlog module loaded?",
    errno.EACCES: "the device is root's: run ingest as root",
    errno.EPERM: "the device needs CAP_SYS_ADMIN: run ingest as root",
    errno.EBUSY: "another reader has the device open (one at a time)",
}


@dataclass(frozen=True)
class DeviceSource:
    """A character device of the protocol: /dev/kextlog of the Linux module.
    Opening it is the connect (the module sends HELLO), closing it the
    disconnect; one reader at a time, root only."""

    spec: str
    path: str

    def connect(self) -> DeviceConnection:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as error:
            meaning = DEVICE_ERRORS.get(error.errno or 0, error.strerror or str(error))
            raise SourceError(f"{self.spec}: {meaning}") from None
        return DeviceConnection(fd)


# What a kernel control's connect errors mean (see xnu's kern_control.c).
KCTL_ERRORS = {
    errno.ENOENT: "no kernel control by that name: is the kext loaded?",
    errno.EPERM: "the control is privileged: run ingest as root",
    errno.EISCONN: "another client is connected to the control (one at a time)",
    errno.EBUSY: "the control is busy (the kext is unloading?)",
}


def explain_kctl_error(error: OSError) -> str:
    return KCTL_ERRORS.get(error.errno or 0, error.strerror or str(error))


@dataclass(frozen=True)
class KctlSource:
    """A macOS kernel control, by name: the kext itself.  Python connects by
    name (it resolves the control id with CTLIOCGINFO) and unit 0 (any)."""

    spec: str
    name: str
    make_socket: SocketFactory = socket.socket

    def connect(self) -> Connection:
        return connect_either(
            self.spec,
            socket.PF_SYSTEM,  # type: ignore[attr-defined]  # macOS only
            socket.SYSPROTO_CONTROL,  # type: ignore[attr-defined]
            self.name,
            (socket.SOCK_DGRAM, socket.SOCK_STREAM),
            explain_kctl_error,
            self.make_socket,
        )


Source = UnixSource | DeviceSource | KctlSource | KmsgSource


def exclusive_key(source: Source) -> str | None:
    """What names a producer that serves one client at a time, for ingest's
    lock on it; None for kmsg (the kernel serves every reader)."""
    if isinstance(source, UnixSource):
        return "unix:" + os.path.realpath(source.path)
    if isinstance(source, KctlSource):
        return source.spec
    return None


# The longest control name the kernel takes (MAX_KCTL_NAME, NUL included).
KCTL_NAME_MAX = 96


def parse_source(
    spec: str, *, kmsg_path: str = DEVICE, kmsg_boot_id: str | None = None, once: bool = False
) -> Source:
    """A --source value: kmsg, unix:PATH, dev:PATH or kctl:NAME."""
    kind, _, rest = spec.partition(":")
    if spec == "kmsg":
        return KmsgSource(spec, kmsg_path, _boot_id(kmsg_boot_id), once)
    if once:
        raise UsageError(f"--once: {spec} never ends; only kmsg sources can be read once")
    if kind == "unix" and rest:
        return UnixSource(spec, rest)
    if kind == "dev" and rest:
        return DeviceSource(spec, rest)
    if kind == "kctl" and rest:
        if not hasattr(socket, "PF_SYSTEM"):
            raise UsageError(f"{spec}: kernel control sources exist only on macOS")
        if len(rest.encode()) >= KCTL_NAME_MAX:
            raise UsageError(f"{spec}: a control name is shorter than {KCTL_NAME_MAX} bytes")
        return KctlSource(spec, rest)
    raise UsageError(f"unknown source {spec!r} (expected kmsg, unix:PATH, dev:PATH or kctl:NAME)")


def _boot_id(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value).hex
    except ValueError:
        raise UsageError(f"--kmsg-boot-id: {value!r} is not a boot id (a UUID)") from None

"""Where frames come from.

A source names a producer (`unix:PATH` now; `kctl:NAME` on macOS and `kmsg`
on Linux come later); connecting gives a Connection that reads frames and
writes the daemon's ACK and RESUME back.
"""

from __future__ import annotations

import errno
import select
import socket
from dataclasses import dataclass

from .errors import ProtocolError, SourceError, UsageError
from .wire import Frame, FrameReader

RECEIVE_BYTES = 256 * 1024  # more than any datagram the producer sends (the seed's caveat)
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # room for bursts while the writer commits


class SourceClosed(SourceError):
    """The producer closed the connection (unloaded, restarted, or refused us)."""


class Connection:
    """One connection to a producer; closing it is the producer's disconnect."""

    def __init__(self, sock: socket.socket, datagrams: bool) -> None:
        self._socket = sock
        self._datagrams = datagrams
        self._reader = FrameReader()
        self._buffer = bytearray(RECEIVE_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)

    def read(self, timeout: float) -> list[Frame]:
        """The frames that arrived within timeout seconds (maybe none)."""
        ready, _, _ = select.select([self._socket], [], [], timeout)
        if not ready:
            return []
        size, _, flags, _ = self._socket.recvmsg_into([self._buffer])
        if size == 0:
            raise SourceClosed("the producer closed the connection")
        if flags & socket.MSG_TRUNC:
            raise ProtocolError(f"a datagram was larger than {RECEIVE_BYTES} bytes")
        return self._reader.feed(memoryview(self._buffer)[:size])

    def send(self, frame: bytes) -> None:
        self._socket.sendall(frame)

    def close(self) -> None:
        self._socket.close()


@dataclass(frozen=True)
class UnixSource:
    """A Unix socket served by the simulator or any producer of the protocol:
    seqpacket stands for a SOCK_DGRAM kernel control, stream for SOCK_STREAM."""

    spec: str
    path: str

    def connect(self) -> Connection:
        # The socket type is the producer's choice: like a kernel control, a
        # listener of the other type answers EPROTOTYPE.
        for kind in (socket.SOCK_SEQPACKET, socket.SOCK_STREAM):
            sock = socket.socket(socket.AF_UNIX, kind)
            try:
                sock.connect(self.path)
            except OSError as error:
                sock.close()
                if error.errno == errno.EPROTOTYPE:
                    continue
                raise SourceError(f"{self.spec}: {error.strerror}") from None
            return Connection(sock, datagrams=kind == socket.SOCK_SEQPACKET)
        raise SourceError(f"{self.spec}: neither a seqpacket nor a stream socket")


Source = UnixSource


def parse_source(spec: str) -> Source:
    kind, _, rest = spec.partition(":")
    if kind == "unix" and rest:
        return UnixSource(spec, rest)
    raise UsageError(f"unknown source {spec!r} (expected unix:PATH)")

"""The sealing key on the host: one small file only root can read, beside
the store (`<db>-seal.key`; for a store that is not a file, in the
directory of the default store, named after the URL and host; or where
KEXTLOG_SEAL_KEY says).

The file holds the key of the next epoch to seal, never an older one.  It
is created new (O_EXCL, O_NOFOLLOW, mode 0600) in a directory no other user
can change (paths), and at each evolution replaced atomically: the new key
goes to a new file, synced, renamed over the old name, and the old file's
bytes are overwritten with zeros through a descriptor kept open across the
rename.  (On a journaling, copy-on-write or flash file system the old bytes
may survive elsewhere on the device: docs/sealing.md.)  In memory the key
is a bytearray that evolves in place and is zeroed when dropped.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import DatabaseError
from ..store import location as store_location
from ..store.engine import sqlite_path
from . import encoding

# The file: magic, the chain's key id, the epoch (uint64 LE), the key.
MAGIC = b"KXSEALK1"
_ID_AT, _EPOCH_AT, _KEY_AT = 8, 8 + encoding.DIGEST_SIZE, 16 + encoding.DIGEST_SIZE
FILE_SIZE = _KEY_AT + encoding.KEY_SIZE
_EPOCH = struct.Struct("<Q")
ENVIRONMENT = "KEXTLOG_SEAL_KEY"


@dataclass
class EpochKey:
    """The key of epoch `epoch` of the chain named key_id."""

    key_id: bytes
    epoch: int
    key: bytearray

    def advance(self, epoch: int) -> None:
        """Evolves to epoch (never back): the older keys are gone."""
        if epoch < self.epoch:
            raise ValueError(f"the key is at epoch {self.epoch}, past {epoch}")
        while self.epoch < epoch:
            encoding.evolve(self.key)
            self.epoch += 1

    def erase(self) -> None:
        self.key[:] = bytes(len(self.key))


def location(url: str, host: str | None) -> Path:
    """Where the key file of the store at url, for host, is."""
    configured = os.environ.get(ENVIRONMENT)
    if configured:
        return Path(configured)
    database = sqlite_path(url)
    if database is not None:
        return database.with_name(f"{database.name}-seal.key")
    from sqlalchemy import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    name = hashlib.sha256(f"{host or socket.gethostname()}\0{shown}".encode()).hexdigest()[:16]
    return store_location.default_database_path().with_name(f"seal-{name}.key")


def _directory(path: Path, create: bool) -> tuple[paths.Directory, str]:
    try:
        return paths.locate(path, **(store_location._made_private(True) if create else {}))
    except paths.Missing:
        raise DatabaseError(f"no sealing key at {path}") from None
    except paths.UnsafePath as error:
        raise DatabaseError(f"refusing the sealing key {path}: {error}") from None


def _sync(directory: paths.Directory) -> None:
    """The directory's entries to disk (its descriptor is only a path's)."""
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=directory.fd)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pack(key: EpochKey) -> bytearray:
    """The file's bytes, built in place (no immutable copy of the key)."""
    data = bytearray(FILE_SIZE)
    data[:_ID_AT] = MAGIC
    data[_ID_AT:_EPOCH_AT] = key.key_id
    _EPOCH.pack_into(data, _EPOCH_AT, key.epoch)
    data[_KEY_AT:] = key.key
    return data


def _write(fd: int, data: bytearray) -> None:
    try:
        if os.write(fd, data) != len(data):
            raise OSError("short write")
        os.fsync(fd)
    finally:
        data[:] = bytes(len(data))


def create(path: Path, key: EpochKey) -> None:
    """A new key file at path: refused when one is there already."""
    directory, name = _directory(path, create=True)
    with directory:
        try:
            fd = directory.create(name, 0o600)
        except FileExistsError:
            raise DatabaseError(
                f"a sealing key exists already at {path}: sealing was set up before "
                "(move it aside to set up again)"
            ) from None
        try:
            _write(fd, _pack(key))
        finally:
            os.close(fd)
        _sync(directory)


def load(path: Path) -> EpochKey:
    """The key in the file at path: root's (or this user's), 0600, whole."""
    directory, name = _directory(path, create=False)
    with directory:
        try:
            fd = directory.open(name)
        except FileNotFoundError:
            raise DatabaseError(f"no sealing key at {path}") from None
        except (paths.UnsafePath, OSError) as error:
            raise DatabaseError(f"refusing the sealing key {path}: {error}") from None
        try:
            info = os.fstat(fd)
            if stat.S_IMODE(info.st_mode) & 0o077:
                raise DatabaseError(
                    f"refusing the sealing key {path}: others may read it "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}); its key may be known"
                )
            data = bytearray(FILE_SIZE + 1)
            length = os.readv(fd, [data])
        finally:
            os.close(fd)
    try:
        if length != FILE_SIZE or data[:_ID_AT] != MAGIC:
            raise DatabaseError(f"{path} is not a kextlog sealing key")
        epoch = _EPOCH.unpack_from(data, _EPOCH_AT)[0]
        return EpochKey(bytes(data[_ID_AT:_EPOCH_AT]), epoch, data[_KEY_AT:FILE_SIZE])
    finally:
        data[:] = bytes(len(data))


def replace(path: Path, key: EpochKey) -> None:
    """The file at path now holds key; the old file's bytes are zeroed."""
    directory, name = _directory(path, create=False)
    new = f"{name}.new"
    with directory:
        directory.unlink(new)  # left by a crash between two steps below
        fd = directory.create(new, 0o600)
        try:
            _write(fd, _pack(key))
        finally:
            os.close(fd)
        try:
            old = directory.open(name, os.O_RDWR)
        except FileNotFoundError:
            old = -1
        try:
            directory.replace(new, name)
            _sync(directory)
            if old >= 0:
                size = os.fstat(old).st_size
                os.pwrite(old, bytes(size), 0)
                os.fsync(old)
        finally:
            if old >= 0:
                os.close(old)


def remove(path: Path) -> None:
    """The key file at path, gone (its bytes zeroed first), if there."""
    directory, name = _directory(path, create=False)
    with directory:
        try:
            fd = directory.open(name, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            os.pwrite(fd, bytes(os.fstat(fd).st_size), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        directory.unlink(name)

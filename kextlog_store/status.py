"""The ingest daemon's live state, for `kextlog status`.

A daemon holds a lock on its store for as long as it runs (Claim): a second
ingest on the same store is refused, and status tells a running daemon from
one that died by whether anyone holds it.  Only the holder writes the state:
a small JSON file, rewritten about once a second, atomically (a temporary
file in the same checked directory, renamed over it).  Beside a SQLite
database they are `<db>-ingest.lock` and `<db>-ingest.json`, like SQLite's
own -wal and -shm; for other back ends they are in the runtime directory,
named after the database URL.  A producer socket has a lock of its own
there too (claim_source): a second ingest on it is refused as well.

status believes a state only from a regular file of root's or of its own
user's, in a directory no one else can change (paths), and only when every
field has the type and range ingest writes (validate).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import socket
import struct
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import DatabaseError, Held, Missing, UnsafePath
from .records import INT64_MAX
from .render.text import escape, local_time
from .store.engine import sqlite_path
from .store.location import locate_database, private_directory

STATE_BYTES_MAX = 1 << 20  # a state is a few hundred bytes per source


def runtime_directory() -> Path:
    """What lasts while ingest runs and is not the store's: locks on
    producers, the state of a store with no file of its own.  Root's is
    /run/kextlog (/var/run/kextlog on macOS); another user's is their own
    runtime directory (XDG_RUNTIME_DIR)."""
    if os.geteuid() == 0:
        return Path("/var/run/kextlog" if sys.platform == "darwin" else "/run/kextlog")
    import platformdirs

    with warnings.catch_warnings():  # its fallback is checked like any path (paths)
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir("kextlog"))


def _place(url: str, host: str | None, *, create: bool) -> tuple[paths.Directory, str, str]:
    """The checked directory of a store's lock and state (made if missing
    with create, else Missing), their names without .lock or .json,
    and the store as messages name it.  Beside a SQLite database they are
    beside its real file: two links to one store share its lock.  A store
    that is not a file has a daemon per host (ingest --host, this
    machine's name by default), each with its own."""
    database = sqlite_path(url)
    if database is not None:
        directory, name = locate_database(database, create=create)
        return directory, f"{name}-ingest", str(database)
    from sqlalchemy import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    return _runtime(create), _url_base(url, host), f"{shown} for host {_host(host)}"


def _host(host: str | None) -> str:
    return host or socket.gethostname()  # as store.writer.Writer's


def _url_base(url: str, host: str | None) -> str:
    """The names of a URL store's files: a hash of the host and the URL
    without its password (no hash of a password in a file name)."""
    from sqlalchemy import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    key = f"{_host(host)}\0{shown}".encode()
    return f"ingest-{hashlib.sha256(key).hexdigest()[:16]}"


def _runtime(create: bool) -> paths.Directory:
    where = runtime_directory()
    try:
        return private_directory(where, create=create)
    except Missing:
        raise
    except UnsafePath as error:
        raise DatabaseError(f"refusing the runtime directory {where}: {error}") from None


def status_path(url: str, host: str | None = None) -> Path:
    """Where the store's state is, for messages (beside a link's target
    when the database is a link)."""
    database = sqlite_path(url)
    if database is not None:
        return database.with_name(f"{database.name}-ingest.json")
    return runtime_directory() / f"{_url_base(url, host)}.json"


_TAKE_TRIES = 100  # each lost to another process that took the lock meanwhile


# struct flock, to ask the kernel who holds a lock (F_GETLK).
if sys.platform == "darwin":
    _FLOCK = struct.Struct("qqihh")  # l_start, l_len, l_pid, l_type, l_whence
    _FLOCK_FIELDS = ("start", "len", "pid", "type", "whence")
else:
    _FLOCK = struct.Struct("@hhqqi4x")  # l_type, l_whence, l_start, l_len, l_pid
    _FLOCK_FIELDS = ("type", "whence", "start", "len", "pid")


def _holder(fd: int) -> int | None:
    """The pid of the process that holds the lock on fd's file, as the
    kernel says (not a pid any file holds); None when none does."""
    values = {"type": fcntl.F_WRLCK, "whence": os.SEEK_SET, "start": 0, "len": 0, "pid": 0}
    query = _FLOCK.pack(*(values[field] for field in _FLOCK_FIELDS))
    raw = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    answer = dict(zip(_FLOCK_FIELDS, _FLOCK.unpack(raw), strict=True))
    return None if answer["type"] == fcntl.F_UNLCK else answer["pid"]


def _take(directory: paths.Directory, name: str, refusal: Callable[[str], str]) -> int:
    """A lock on the file name in directory (made if missing), held until
    its descriptor is closed or the process ends: a POSIX lock, whose
    holder the kernel names to others (_holder); Held with refusal(pid)
    when another process holds one.  Exclusive, but shared where the file
    system is read-only (an exclusive lock needs the file open for
    writing): it keeps out every other ingest all the same, as each asks
    who holds a lock before it takes its own."""
    exclusive = True
    try:
        fd = directory.create(name, 0o640, os.O_RDWR)
    except FileExistsError:
        try:
            fd = directory.open(name, os.O_RDWR)
        except OSError as error:
            if error.errno != errno.EROFS:
                raise
            fd, exclusive = directory.open(name), False
    try:
        for _ in range(_TAKE_TRIES):
            holder = _holder(fd)
            if holder is not None:
                raise Held(refusal(str(holder)))
            try:
                fcntl.lockf(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                return fd
            except OSError as error:  # taken meanwhile: ask again who holds it
                if error.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
        raise Held(refusal("unknown"))  # the kernel refuses, and names no one
    except BaseException:
        os.close(fd)
        raise


class Claim:
    """One daemon's hold on a store, from its start to its exit: the
    store's lock, and the state it publishes for `kextlog status`."""

    def __init__(self, url: str, host: str | None = None) -> None:
        self._directory, base, shown = _place(url, host, create=True)
        self.path = self._directory.path / f"{base}.json"
        self._state, self._temporary = f"{base}.json", f"{base}.json.tmp"
        try:
            self._lock = _take(
                self._directory,
                f"{base}.lock",
                lambda pid: (
                    f"{shown} is in use by another ingest (pid {pid}); one daemon per store"
                ),
            )
        except BaseException:
            self._directory.close()
            raise
        try:
            self._directory.unlink(self._state)  # the last run's: status says "starting"
        except OSError as error:  # a read-only file system: nothing is published either
            if error.errno != errno.EROFS:
                self.release()
                raise

    def publish(self, snapshot: dict) -> None:
        data = (json.dumps(snapshot, indent=1) + "\n").encode()
        self._directory.unlink(self._temporary)  # one a crash left
        try:
            with os.fdopen(self._directory.create(self._temporary, 0o640), "wb") as file:
                file.write(data)
        except OSError as error:
            self._directory.unlink(self._temporary)
            if error.errno != errno.ENOSPC:
                raise
            self._overwrite(data, error)
            return
        self._directory.replace(self._temporary, self._state)

    def _overwrite(self, data: bytes, full: OSError) -> None:
        """A full disk, likely the store's outage, which status is to show:
        over the last state in place, which takes no new space; padded (JSON
        may end in blanks) so that none of it is left."""
        try:
            fd = self._directory.open(self._state, os.O_WRONLY)
        except FileNotFoundError:
            raise full from None
        with os.fdopen(fd, "wb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(0)
            file.write(data.ljust(size, b" "))

    def release(self) -> None:
        os.close(self._lock)
        self._directory.close()


def claim_source(spec: str, key: str) -> Callable[[], None]:
    """A producer's lock (key: what names it for good, e.g. its socket's
    real path) in the runtime directory, for as long as ingest runs: a
    producer serves one client.  Returns what releases it."""
    directory = _runtime(create=True)
    try:
        name = f"source-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"
        fd = _take(
            directory,
            name,
            lambda pid: (
                f"{spec} is read by another ingest (pid {pid}); a producer serves one client"
            ),
        )
    finally:
        directory.close()
    return lambda: os.close(fd)


@dataclass(frozen=True)
class IngestStatus:
    path: Path
    snapshot: dict
    holder: int | None  # the process that holds the store's lock

    @property
    def alive(self) -> bool:
        """A daemon runs: the one that wrote this state."""
        return self.holder is not None

    @property
    def state(self) -> str:
        if self.alive:
            return "running" if self.snapshot["running"] else "stopping"
        if not self.snapshot["running"]:
            return "stopped"
        return f"not running (stale state from {local_time(self.snapshot['updated_ns'])})"


def read_status(url: str, host: str | None = None) -> IngestStatus | None:
    """The state ingest published for this store; None if there is none.
    A state that another user could have written, or that is not one
    ingest writes, is refused (DatabaseError)."""
    try:
        directory, base, _ = _place(url, host, create=False)
    except Missing:
        return None
    with directory:
        path = directory.path / f"{base}.json"
        try:
            fd = directory.open(f"{base}.json")
            with os.fdopen(fd, "rb") as file:
                data = file.read(STATE_BYTES_MAX + 1)
        except FileNotFoundError:
            return None
        except UnsafePath as error:
            raise DatabaseError(f"refusing the ingest state {path}: {error}") from None
        except OSError as error:
            raise DatabaseError(f"cannot read the ingest state {path}: {error.strerror}") from None
        snapshot = parse(data, path)
        # Taken after the state was read: a daemon that holds it now wrote
        # that state, or (just started) removed it already.
        return IngestStatus(path, snapshot, _lock_holder(directory, f"{base}.lock"))


def starting(url: str, host: str | None = None) -> int | None:
    """The pid of an ingest that holds the store's lock but has published
    no state yet (read_status gave None); None if none does."""
    try:
        directory, base, _ = _place(url, host, create=False)
    except Missing:
        return None
    with directory:
        return _lock_holder(directory, f"{base}.lock")


def _lock_holder(directory: paths.Directory, name: str) -> int | None:
    try:
        fd = directory.open(name)
    except FileNotFoundError:
        return None  # never locked: no ingest ran since the lock came in
    except UnsafePath as error:
        raise DatabaseError(f"refusing the ingest lock {directory.path / name}: {error}") from None
    try:
        return _holder(fd)
    finally:
        os.close(fd)


# --- what a state may hold -----------------------------------------------------


class _Malformed(ValueError):
    pass


Check = Callable[[object, str], None]


def _integer(low: int, high: int = INT64_MAX) -> Check:
    def check(value: object, where: str) -> None:
        if type(value) is not int or not low <= value <= high:
            raise _Malformed(f"{where}: expected an integer from {low} to {high}")

    return check


def _number(value: object, where: str) -> None:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:  # type: ignore[arg-type]
        raise _Malformed(f"{where}: expected a finite number of 0 or more")


def _flag(value: object, where: str) -> None:
    if type(value) is not bool:
        raise _Malformed(f"{where}: expected true or false")


def _text(value: object, where: str) -> None:
    if type(value) is not str:
        raise _Malformed(f"{where}: expected a string")


def _optional(check: Check) -> Check:
    def optional(value: object, where: str) -> None:
        if value is not None:
            check(value, where)

    return optional


def _object(fields: dict[str, Check], optional: frozenset[str] = frozenset()) -> Check:
    """An object with these fields (more are ignored: a newer ingest's)."""

    def check(value: object, where: str) -> None:
        if type(value) is not dict:
            raise _Malformed(f"{where or 'the state'}: expected an object")
        for name, field in fields.items():
            if name in value:
                field(value[name], f"{where}.{name}" if where else name)
            elif name not in optional:
                raise _Malformed(f"{where}.{name}: missing" if where else f"{name}: missing")

    return check


def _list(check: Check) -> Check:
    def items(value: object, where: str) -> None:
        if type(value) is not list:
            raise _Malformed(f"{where}: expected a list")
        for index, item in enumerate(value):
            check(item, f"{where}[{index}]")

    return items


def _counts(value: object, where: str) -> None:
    if type(value) is not dict:
        raise _Malformed(f"{where}: expected an object")
    for key, count in value.items():
        _COUNT(count, f"{where}.{key}")


_COUNT = _integer(0)
_LATENCY = _object({"p50": _optional(_number), "p99": _optional(_number), "samples": _COUNT})
_SOURCE = _object(
    {
        "source": _text,
        "connected": _flag,
        "since_ns": _COUNT,
        "error": _optional(_text),
        "producer": _optional(_text),
        "instance": _optional(_text),
        "committed_seq": _optional(_COUNT),
        "lag": _optional(_integer(-INT64_MAX)),
        "lost": _optional(_COUNT),
        "skipped": _object({"bytes": _COUNT, "problems": _counts}),
        "ring": _optional(
            _object(
                {
                    name: _COUNT
                    for name in ("records", "capacity", "bytes_used", "bytes", "producer_lost")
                }
            )
        ),
    },
    optional=frozenset({"skipped"}),  # ingest before 0.1 did not count them
)
validate = _object(
    {
        "pid": _integer(1, (1 << 31) - 1),
        "running": _flag,
        "started_ns": _COUNT,
        "updated_ns": _COUNT,
        "stored": _COUNT,
        "lost": _COUNT,
        "filtered": _COUNT,
        "commits": _COUNT,
        "store_outage": _optional(
            _object({"what": _text, "error": _text, "since_ns": _COUNT, "waiting": _COUNT})
        ),
        "latency_ms": _object({"recent": _LATENCY, "run": _LATENCY}),
        "sources": _list(_SOURCE),
    }
)


def _reject_constant(name: str) -> None:
    raise _Malformed(f"{name} is not a number")


def parse(data: bytes, path: Path) -> dict:
    """A state as ingest writes it, from a file's bytes; DatabaseError in
    one line for anything else."""
    try:
        if len(data) > STATE_BYTES_MAX:
            raise _Malformed(f"larger than {STATE_BYTES_MAX:,} bytes")
        snapshot = json.loads(data.decode(), parse_constant=_reject_constant)
        validate(snapshot, "")
    except RecursionError:
        problem = "nested too deeply"
    except UnicodeDecodeError:
        problem = "not UTF-8"
    except _Malformed as error:
        problem = str(error)
    except ValueError as error:  # json.JSONDecodeError, and too many digits
        problem = f"not JSON: {error}"
    else:
        return snapshot
    raise DatabaseError(f"{path}: not a state ingest wrote ({escape(problem, newlines=True)})")

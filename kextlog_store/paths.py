"""Paths no other local user can steer.

kextlog runs as root.  A path another user could change would let them
choose what it opens or creates: a symbolic link planted where the database
is to be, a directory they may write.  So every path kextlog opens is walked
from / a component at a time, as ssh's StrictModes and systemd's chase() do:
each directory is opened without following links and checked on that
descriptor (owned by root or by this user, writable by no one else) and a
symbolic link is followed only when root or this user owns it.

A directory that others may write is accepted only where it is sticky (as
/tmp: others cannot rename or remove what is ours) and not the last of the
path, unless the caller says the last may be shared (a socket, which only
its creator can then replace).  SQLite opens its -wal, -shm and -journal
files by name beside the database: that directory must be ours alone.

Once checked, the path cannot change under us.  Files are still created in
the directory through its descriptor, O_EXCL | O_NOFOLLOW, and replaced by
renames within it: no name is ever resolved twice.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from contextlib import suppress
from pathlib import Path

from .errors import Missing, UnsafePath

# A directory's descriptor: O_PATH where there is one (no read permission
# needed, as for a walk by name), else a read-only one.
_DIRECTORY = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# One we made, to set its mode and group.
_OWN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LINKS_MAX = 40  # as the kernel's own limit on links in one lookup


def trusted_users() -> frozenset[int]:
    """Who may own what kextlog opens: root, and the user it runs as."""
    return frozenset({0, os.geteuid()})


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


def _group_of_trusted_users(gid: int) -> bool:
    """Whether only root and this user are in the group (as members, or by
    their primary group): then its write permission gives no one else
    anything, as for a user's private group."""
    try:
        members = {pwd.getpwnam(name).pw_uid for name in grp.getgrgid(gid).gr_mem}
    except KeyError:
        return False
    members |= {user.pw_uid for user in pwd.getpwall() if user.pw_gid == gid}
    return members <= trusted_users()


def _untrusted_writers(info: os.stat_result) -> str | None:
    """Who else may write it: "everyone", "group NAME", or None."""
    if info.st_mode & stat.S_IWOTH:
        return "everyone"
    if info.st_mode & stat.S_IWGRP and not _group_of_trusted_users(info.st_gid):
        return f"group {_group_name(info.st_gid)}"
    return None


def _owner_problem(info: os.stat_result, where: Path) -> str | None:
    if info.st_uid in trusted_users():
        return None
    return f"{where} is owned by {user_name(info.st_uid)}, not by root or {user_name(os.geteuid())}"


def _writers_problem(info: os.stat_result, where: Path, writers: str) -> str:
    mode = stat.S_IMODE(info.st_mode)
    fix = "o-w" if writers == "everyone" else "g-w"
    return f"{where} is writable by {writers} (mode {mode:04o}): chmod {fix} {where}"


def check_file(info: os.stat_result, where: Path) -> None:
    """A file kextlog may trust: a regular file of root's or this user's
    that no one else may write."""
    if not stat.S_ISREG(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise UnsafePath(f"{where} is {kind}")
    problem = _owner_problem(info, where)
    writers = _untrusted_writers(info)
    if problem is None and writers is not None:
        problem = _writers_problem(info, where, writers)
    if problem is not None:
        raise UnsafePath(problem)


class Directory:
    """A checked directory, used through its descriptor."""

    def __init__(self, fd: int, path: Path, shared: bool) -> None:
        self.fd = fd
        self.path = path  # its real path, for messages and for SQLite
        self.shared = shared  # sticky, and others may create names in it

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def lstat(self, name: str) -> os.stat_result | None:
        """The entry itself (a link is not followed); None if there is none."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def create(self, name: str, mode: int, flags: int = os.O_WRONLY) -> int:
        """A new file: never an existing one, never through a link."""
        flags |= os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(name, flags, mode, dir_fd=self.fd)

    def open(self, name: str, flags: int = os.O_RDONLY) -> int:
        """An existing file, not through a link, that check_file accepts
        (opened non-blocking: a FIFO planted there does not hang us)."""
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=self.fd)
        try:
            check_file(os.fstat(fd), self.path / name)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def replace(self, source: str, target: str) -> None:
        os.replace(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        """Removes the entry (a link itself, never what it points to), if any."""
        with suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def make(self, name: str, mode: int | None = None, group: int = -1) -> Directory:
        """A new directory in this one: 0755 less the umask, or given mode
        (setgid too) and group, set once it is ours alone."""
        os.mkdir(name, 0o755 if mode is None else 0o700, dir_fd=self.fd)
        fd = os.open(name, _OWN_DIRECTORY, dir_fd=self.fd)
        try:
            if mode is not None:
                os.fchown(fd, -1, group)
                os.fchmod(fd, mode)
            return _checked(fd, self.path / name)
        except BaseException:
            os.close(fd)
            raise


def _checked(fd: int, where: Path) -> Directory:
    info = os.fstat(fd)
    problem = _owner_problem(info, where)
    writers = _untrusted_writers(info)
    sticky = bool(info.st_mode & stat.S_ISVTX)
    if problem is None and writers is not None and not sticky:
        problem = _writers_problem(info, where, writers)
    if problem is not None:
        raise UnsafePath(problem)
    return Directory(fd, where, shared=writers is not None)


def _walk(path: Path) -> tuple[Directory, list[str]]:
    """The deepest directory of path that exists, checked on the way, and
    the names after it that do not exist (empty when the whole path is a
    directory).  Links are followed only when trusted_users() own them;
    an entry that is not a directory (a file, a socket) ends the walk as
    if it did not exist, and is the caller's to look at."""
    pending = list(reversed(Path(os.path.abspath(path)).parts[1:]))
    current = _checked(os.open("/", _DIRECTORY), Path("/"))
    links = 0
    try:
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            try:
                fd = os.open(name, _DIRECTORY, dir_fd=current.fd)
            except FileNotFoundError:
                return current, [name, *reversed(pending)]
            except OSError as error:
                if error.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                info = current.lstat(name)
                if info is None or not stat.S_ISLNK(info.st_mode):
                    return current, [name, *reversed(pending)]
                where = current.path / name
                if info.st_uid not in trusted_users():
                    raise UnsafePath(
                        f"{where} is a symbolic link owned by {user_name(info.st_uid)}"
                    ) from None
                links += 1
                if links > _LINKS_MAX:
                    raise UnsafePath(f"{path}: too many symbolic links") from None
                target = Path(os.readlink(name, dir_fd=current.fd))
                pending.extend(reversed(target.parts[1:] if target.is_absolute() else target.parts))
                if target.is_absolute():
                    current.close()
                    current = _checked(os.open("/", _DIRECTORY), Path("/"))
                continue
            where = current.path.parent if name == ".." else current.path / name
            current.close()
            current = _checked(fd, where)
        return current, []
    except BaseException:
        current.close()
        raise


def open_directory(
    path: Path, *, shared: bool = False, mode: int | None = None, group: int = -1
) -> Directory:
    """path, a directory no other user can change, checked all the way
    from /.  shared: it may be a sticky directory others write in (only
    for what no one else can replace there: a socket).  With a mode, the
    directories missing are made: the last with mode and group, those
    before it 0755 less the umask; else a missing one raises Missing."""
    try:
        directory, missing = _walk(path)
    except OSError as error:
        raise UnsafePath(f"{path}: {error.strerror}") from None
    try:
        if missing and directory.lstat(missing[0]) is not None:
            raise UnsafePath(f"{directory.path / missing[0]} is not a directory")
        if missing and mode is None:
            raise Missing(f"{directory.path / missing[0]}: no such directory")
        for index, name in enumerate(missing):
            last = index == len(missing) - 1
            try:
                made = directory.make(name, mode if last else None, group if last else -1)
            except FileExistsError:  # made meanwhile by another process
                made = open_directory(directory.path / name, shared=True)
            directory.close()
            directory = made
        if directory.shared and not shared:
            info = os.fstat(directory.fd)
            writers = _untrusted_writers(info) or "others"
            raise UnsafePath(_writers_problem(info, directory.path, writers))
        return directory
    except BaseException:
        directory.close()
        raise


def locate(
    path: Path, *, shared: bool = False, mode: int | None = None, group: int = -1
) -> tuple[Directory, str]:
    """The directory of the file at path (open_directory, with the same
    options) and the file's name in it.  A link at path is followed when
    trusted_users() own it, to where it points, checked the same way."""
    path = Path(os.path.abspath(path))
    for _ in range(_LINKS_MAX):
        directory = open_directory(path.parent, shared=shared, mode=mode, group=group)
        try:
            info = directory.lstat(path.name)
        except OSError as error:  # e.g. a directory we may enter but not search
            directory.close()
            raise UnsafePath(f"{path}: {error.strerror}") from None
        if info is None or not stat.S_ISLNK(info.st_mode):
            return directory, path.name
        with directory:
            if info.st_uid not in trusted_users():
                raise UnsafePath(
                    f"{directory.path / path.name} is a symbolic link owned by "
                    f"{user_name(info.st_uid)}"
                )
            path = directory.path / os.readlink(path.name, dir_fd=directory.fd)
    raise UnsafePath(f"{path}: too many symbolic links")


def check_owned(path: Path, *, regular: bool = False, what: str | None = None) -> None:
    """Refuses what kextlog only reads (a configuration file, a socket, a
    device) when another user could change it: a directory or link on its
    way, or the file itself, owned by someone else or, for a regular file,
    writable by someone else (check_file).  The directory it is in may be
    shared (sticky, as /tmp): no one else can replace what is ours there.
    A path that does not exist passes: opening it says so.  what: what the
    path is, for the error (refusing WHAT PATH: why)."""
    if what is not None:
        try:
            check_owned(path, regular=regular)
        except UnsafePath as error:
            raise UnsafePath(f"refusing {what} {path}: {error}") from None
        return
    try:
        directory, name = locate(path, shared=True)
    except Missing:
        return
    with directory:
        info = directory.lstat(name)
        where = directory.path / name
        if info is None:
            return
        if regular:
            check_file(info, where)
        elif info.st_uid not in trusted_users():
            raise UnsafePath(f"{where} is owned by {user_name(info.st_uid)}")

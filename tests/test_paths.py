"""paths: a walk from / that follows only trusted links, checks each
directory on its descriptor, and creates files through it.  Directories
here are root's (pytest's own); another user is `nobody`."""

from __future__ import annotations

import grp
import os
import socket
import stat
from pathlib import Path

import pytest

from kextlog_store import paths
from kextlog_store.errors import Missing, UnsafePath

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to act as nobody")
NOBODY = 65534


def test_links_are_followed_as_the_kernel_follows_them(tmp_path: Path) -> None:
    """Relative links with .. go up from where the link is, absolute ones
    start again at /, links to links are followed: the directory found is
    the one the kernel finds."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c" / "d").mkdir(parents=True)
    (tmp_path / "a" / "b" / "up").symlink_to("../../c")
    (tmp_path / "absolute").symlink_to(tmp_path / "a" / "b" / "up")
    (tmp_path / "c" / "again").symlink_to("../absolute/d/..")
    for path in (
        tmp_path / "a" / "b" / "up" / "d",
        tmp_path / "absolute" / "d",
        tmp_path / "c" / "again" / "d",
        tmp_path / "a" / "." / "b" / "up" / "d" / ".." / "d",
    ):
        with paths.open_directory(path) as directory:
            assert directory.path == tmp_path / "c" / "d" == Path(os.path.realpath(path))
            assert os.path.samestat(os.fstat(directory.fd), os.stat(tmp_path / "c" / "d"))


def test_a_loop_of_links_ends(tmp_path: Path) -> None:
    (tmp_path / "one").symlink_to("two")
    (tmp_path / "two").symlink_to("one")
    with pytest.raises(UnsafePath, match="too many symbolic links"):
        paths.open_directory(tmp_path / "one" / "x", mode=0o700)
    with pytest.raises(UnsafePath, match="too many symbolic links"):
        paths.locate(tmp_path / "one")


@needs_root
def test_a_link_another_user_owns_is_never_followed(tmp_path: Path) -> None:
    """Even one that points where a trusted path would lead."""
    (tmp_path / "real").mkdir()
    link = tmp_path / "link"
    link.symlink_to("real")
    os.chown(link, NOBODY, -1, follow_symlinks=False)
    for attempt in (
        lambda: paths.open_directory(link),
        lambda: paths.open_directory(link / "new", mode=0o700),
        lambda: paths.locate(link / "k.db"),
        lambda: paths.locate(link),
    ):
        with pytest.raises(UnsafePath, match=f"^{link} is a symbolic link owned by nobody$"):
            attempt()
    assert list((tmp_path / "real").iterdir()) == []


@needs_root
def test_each_directory_on_the_way_is_checked(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    (theirs / "inner").mkdir(parents=True)
    os.chown(theirs, NOBODY, -1)
    with pytest.raises(UnsafePath, match=f"^{theirs} is owned by nobody, not by root"):
        paths.open_directory(theirs / "inner")
    theirs.chmod(0o1777)  # sticky: others may add names, not replace ours
    os.chown(theirs, 0, -1)
    paths.open_directory(theirs / "inner").close()
    with pytest.raises(UnsafePath, match=rf"^{theirs} is writable by everyone \(mode 1777\)"):
        paths.open_directory(theirs)
    with paths.open_directory(theirs, shared=True) as directory:
        assert directory.shared


@needs_root
@pytest.mark.parametrize(("group", "refused"), [("root", False), ("nogroup", True)])
def test_a_group_may_write_when_it_holds_no_one_else(
    tmp_path: Path, group: str, refused: bool
) -> None:
    """root alone is in group root; nobody is in nogroup (its primary group)."""
    directory = tmp_path / "group"
    directory.mkdir()
    os.chown(directory, 0, grp.getgrnam(group).gr_gid)
    directory.chmod(0o775)
    if refused:
        with pytest.raises(UnsafePath, match=f"is writable by group {group} "):
            paths.open_directory(directory)
    else:
        paths.open_directory(directory).close()


@needs_root
def test_missing_directories_are_made_private_to_the_last(tmp_path: Path) -> None:
    group = grp.getgrnam("adm").gr_gid
    previous = os.umask(0o022)
    try:
        with paths.open_directory(tmp_path / "a" / "b", mode=0o2750, group=group) as made:
            assert made.path == tmp_path / "a" / "b"
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    info = (tmp_path / "a" / "b").stat()
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o2750, group)
    with pytest.raises(Missing, match="no such directory"):
        paths.open_directory(tmp_path / "c" / "d")
    assert not (tmp_path / "c").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(UnsafePath, match="file is not a directory"):
        paths.open_directory(tmp_path / "file" / "d", mode=0o700)


def test_files_are_made_and_opened_never_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("kept\n")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    with paths.open_directory(tmp_path) as directory:
        with pytest.raises(FileExistsError):
            directory.create("link", 0o600)
        with pytest.raises(OSError, match=r"symbolic link|Too many levels"):
            directory.open("link", os.O_WRONLY)
        # Not a regular file: refused, and without waiting for a writer.
        with pytest.raises(UnsafePath, match="fifo is not a regular file"):
            directory.open("fifo")
        os.close(directory.create("new", 0o600))
        directory.replace("new", "link")  # the link itself is replaced
        directory.unlink("missing")
    assert target.read_text() == "kept\n"
    assert (tmp_path / "link").is_file() and not (tmp_path / "link").is_symlink()


@needs_root
def test_what_is_only_read_must_be_of_a_trusted_user(tmp_path: Path) -> None:
    config = tmp_path / "kextlog.toml"
    config.write_text("")
    paths.check_owned(config, regular=True)
    config.chmod(0o646)
    with pytest.raises(UnsafePath, match="is writable by everyone"):
        paths.check_owned(config, regular=True)
    sock = tmp_path / "log"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock))
    paths.check_owned(sock)
    os.chown(sock, NOBODY, -1)
    with pytest.raises(UnsafePath, match=f"^{sock} is owned by nobody$"):
        paths.check_owned(sock)
    server.close()
    paths.check_owned(Path("/dev/null"))
    paths.check_owned(tmp_path / "missing" / "file")  # said when it is opened


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists descriptors in /proc")
def test_walks_leave_no_descriptor_open(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "loop").symlink_to("loop")
    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(50):
        paths.open_directory(tmp_path / "d").close()
        paths.locate(tmp_path / "d" / "file")[0].close()
        with pytest.raises(UnsafePath):
            paths.open_directory(tmp_path / "loop")
        with pytest.raises(Missing):
            paths.open_directory(tmp_path / "d" / "none")
    assert sorted(os.listdir("/proc/self/fd")) == before

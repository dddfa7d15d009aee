"""No secret is ever printed: a PostgreSQL password given in the database
URL appears in no output stream and no file kextlog writes, whatever
happens: reloads, --check-config, status, failed connections, tracebacks."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from kextlog_store import redact
from kextlog_store.status import status_path
from tests.postgres_server import Server
from tests.processes import COMMAND, environment, kextlog

# A password and how it may be written: percent-encoded in the URL.
PASSWORD = "S3cret/P@ss word"
FORMS = (PASSWORD, quote(PASSWORD, safe=""), "S3cret")


def with_password(url: str, password: str = PASSWORD) -> str:
    """url (postgresql+psycopg://postgres@/...) with a password: the test
    server trusts its socket, so any password connects."""
    return url.replace("://postgres@", f"://postgres:{quote(password, safe='')}@", 1)


def assert_no_secret(*texts: str | bytes) -> None:
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        for form in FORMS:
            assert form not in text, text


def test_redact_in_text() -> None:
    assert redact.redact("postgresql://kextlog:pw@db/x?password=pw2&ssl=1") == (
        "postgresql://kextlog:***@db/x?password=***&ssl=1"
    )
    assert redact.redact("host=db password=hunter2 user=k") == "host=db password=*** user=k"
    redact.remember("postgresql+psycopg://kextlog:%2Fhunter%203@db/x")
    assert redact.redact("FATAL: '/hunter 3' and %2Fhunter%203") == "FATAL: '***' and ***"
    assert redact.redact_all({"a": ["x /hunter 3"], "n": 1}) == {"a": ["x ***"], "n": 1}


@pytest.fixture
def database(postgres_database: Callable[..., str]) -> str:
    """A migrated PostgreSQL store's URL, with the password in it."""
    return with_password(postgres_database())


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[socket.socket]:
    """A syslog socket that keeps what ingest sends it."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "log.sock"))
    server.setblocking(False)
    yield server
    server.close()


def received(server: socket.socket) -> list[bytes]:
    found = []
    while True:
        try:
            found.append(server.recv(65536))
        except BlockingIOError:
            return found


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def every_file(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file() and not path.is_socket()]


def test_ingest_reload_status_and_state_never_show_the_password(
    database: str, tmp_path: Path, syslog: socket.socket
) -> None:
    runtime = tmp_path / "runtime"  # another user's runtime directory; root's is /run/kextlog
    runtime.mkdir(mode=0o700)
    state = status_path(database)
    config = tmp_path / "kextlog.toml"
    config.write_text(
        f'sources = ["unix:{tmp_path / "nobody.sock"}"]\ndatabase = "{database}"\n'
        f'syslog = true\nsyslog_socket = "{tmp_path / "log.sock"}"\n'
    )
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    log = tmp_path / "ingest.log"
    process = subprocess.Popen(
        [*COMMAND, "ingest", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        env=environment(**env),
    )
    try:
        wait_for(state.exists, "state file")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in log.read_text(), "reload line")
        shown = [
            kextlog("status", "--db", database, **env),
            kextlog("status", "--db", database, "-o", "json", **env),
        ]
        assert shown[0].returncode == 0 and "ingest: running" in shown[0].stdout
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    reload_line = next(line for line in log.read_text().splitlines() if "reloaded" in line)
    assert "database postgresql+psycopg://postgres:***@/" in reload_line
    messages = received(syslog)
    assert any(b"reloaded" in message for message in messages)
    assert_no_secret(out, log.read_text(), *messages)
    for result in shown:
        assert_no_secret(result.stdout, result.stderr)
    written = [path for path in every_file(tmp_path) if path != config]  # the one given
    for path in [*written, state, state.with_suffix(".lock")]:
        assert_no_secret(path.read_bytes())


def test_check_config_never_shows_the_password(database: str, tmp_path: Path) -> None:
    config = tmp_path / "kextlog.toml"
    config.write_text(f'sources = ["kmsg"]\ndatabase = "{database}"\n')
    for args in (["--config", str(config)], ["--source", "kmsg", "--db", database]):
        result = kextlog("ingest", "--check-config", *args)
        assert result.returncode == 0, result.stderr
        assert 'database = "postgresql+psycopg://postgres:***@/' in result.stdout
        assert_no_secret(result.stdout, result.stderr)


@pytest.mark.parametrize("debug", ["", "1"])
def test_failed_connections_never_show_the_password(
    postgres: Server, tmp_path: Path, debug: str
) -> None:
    """A server that is not there, a database that is not there, a port
    nothing listens on; with KEXTLOG_DEBUG=1, tracebacks."""
    urls = [
        with_password(f"postgresql://postgres@/kextlog?host={tmp_path}"),
        with_password(postgres.url("no_such_database")),
        with_password("postgresql://postgres@127.0.0.1:1/kextlog"),
        with_password("postgresql://postgres@/kextlog?host=/nonexistent&password=S3cret-2"),
    ]
    commands = [
        ["query"], ["sql", "SELECT 1"], ["stats"], ["status"], ["db", "current"],
        ["db", "upgrade"], ["prune", "--older-than", "1d"],
        ["ingest", "--source", f"unix:{tmp_path / 'x.sock'}"],
    ]  # fmt: skip
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "KEXTLOG_DEBUG": debug}
    for url in urls:
        for command in commands:
            result = kextlog(*command, "--db", url, **env)
            assert result.returncode != 0 or command == ["status"], (command, result.stderr)
            assert_no_secret(result.stdout, result.stderr)
            assert "S3cret-2" not in result.stdout + result.stderr
    for path in every_file(tmp_path):
        assert_no_secret(path.read_bytes())


def test_a_traceback_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """KEXTLOG_DEBUG=1 prints the traceback of a failure no layer typed:
    one that quotes the URL (a driver's, a bug) too."""
    from kextlog_store import cli, query

    url = f"postgresql://kextlog:{quote(PASSWORD, safe='')}@/x?host={tmp_path}"

    def failing(*_args: object) -> None:
        raise RuntimeError(f"could not use {url} (password {PASSWORD!r})")

    monkeypatch.setattr(query, "found", failing)
    monkeypatch.setattr(query, "RecordFilter", lambda **_: None)
    for debug in ("1", ""):
        monkeypatch.setenv("KEXTLOG_DEBUG", debug)
        with pytest.raises(SystemExit) as caught:
            cli.main(["query", "--db", url])
        assert caught.value.code == 1
        out, err = capsys.readouterr()
        assert ("Traceback" in err) is bool(debug) and "RuntimeError: could not use" in err
        assert_no_secret(out, err)


def test_a_bad_url_never_shows_the_password(tmp_path: Path) -> None:
    for url in (
        f"postgresql://kextlog:{quote(PASSWORD, safe='')}@[::1",
        f"foo://kextlog:{quote(PASSWORD, safe='')}@x/y",
        f"postgresql://kextlog:{quote(PASSWORD, safe='')}@host:99999999/db",
    ):
        for debug in ("", "1"):
            result = kextlog("query", "--db", url, KEXTLOG_DEBUG=debug)
            assert result.returncode == 2, result.stderr
            assert_no_secret(result.stdout, result.stderr)

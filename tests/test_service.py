"""Running ingest as a service: the launchd plist and the systemd unit are
valid and start ingest with arguments it accepts; `make install-service`
puts kextlog's path in them; SIGHUP re-reads the configuration and reopens
the store without losing or repeating a record; the daemon's messages reach
syslog with their facility and priority."""

from __future__ import annotations

import json
import os
import plistlib
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, unavailable, wait_until
from tests.processes import COMMAND, kextlog, start, start_simulator
from tests.test_delivery import accounting, wait_for_line

SERVICE = ROOT / "service"
PLIST = SERVICE / "com.kextlog.ingest.plist"
UNIT = SERVICE / "kextlog-ingest.service"
EXAMPLE = SERVICE / "kextlog.toml"
CONFIG = "/etc/kextlog/kextlog.toml"


def check_arguments(arguments: list[str], tmp_path: Path) -> str:
    """Runs the service's `kextlog ingest ...` through the real CLI, with
    --check-config, the example configuration and a temporary store."""
    assert arguments[0] == "@KEXTLOG@"
    arguments = [str(EXAMPLE) if argument == CONFIG else argument for argument in arguments[1:]]
    result = kextlog(*arguments, "--db", str(tmp_path / "k.db"), "--check-config")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_launchd_plist(tmp_path: Path) -> None:
    with PLIST.open("rb") as file:
        plist = plistlib.load(file)
    assert plist["Label"] == "com.kextlog.ingest" == PLIST.stem
    assert plist["ProgramArguments"] == ["@KEXTLOG@", "ingest", "--config", CONFIG, "--syslog"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}  # again after a failure
    assert plist["ProcessType"] in ("Standard", "Interactive")  # never throttled
    assert plist["StandardErrorPath"] == "/var/log/kextlog/ingest.log"
    assert plist["ExitTimeOut"] >= 10 and plist["Umask"] == 0o027
    assert "syslog = true" in check_arguments(plist["ProgramArguments"], tmp_path)


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section -> key -> values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, equals, value = line.partition("=")
        assert equals and current is not None, line
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_systemd_unit(tmp_path: Path) -> None:
    unit = unit_sections(UNIT.read_text())
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Type"] == "simple"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure" and service["RestartSec"] == "2s"
    assert service["KillSignal"] == "SIGTERM" and service["TimeoutStopSec"] == "30s"
    assert service["StateDirectory"] == "kextlog" and service["StateDirectoryMode"] == "0750"
    assert service["RuntimeDirectory"] == "kextlog" and service["RuntimeDirectoryMode"] == "0750"
    assert service["UMask"] == "0027"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/kextlog"
    for option in ("ProtectHome", "PrivateTmp", "NoNewPrivileges", "ProtectKernelTunables"):
        assert service[option] == "true", option
    assert "PrivateDevices" not in service and service["DeviceAllow"] == "/dev/kmsg r"
    assert service["RestrictAddressFamilies"] == "AF_UNIX"
    assert service["CapabilityBoundingSet"] == "CAP_SYSLOG"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "syslog = true" in check_arguments(service["ExecStart"].split(), tmp_path)


def test_the_systemd_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed: tests/install-packages.sh installs it")
    kextlog_path = Path(COMMAND[0]).with_name("kextlog")
    assert kextlog_path.exists()
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("@KEXTLOG@", str(kextlog_path)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert unit.name not in result.stderr, result.stderr  # no warning about the unit


def test_make_install_service_puts_the_path_in(tmp_path: Path) -> None:
    root = tmp_path / "root"

    def install() -> None:
        result = subprocess.run(
            ["make", "-s", "install-service", f"DESTDIR={root}",
             "KEXTLOG_PATH=/opt/kextlog/bin/kextlog"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

    install()
    unit = (root / "etc/systemd/system/kextlog-ingest.service").read_text()
    assert "ExecStart=/opt/kextlog/bin/kextlog ingest --config " in unit
    assert "@KEXTLOG@" not in unit
    installed = root / "etc/kextlog/kextlog.toml"
    assert installed.read_text() == EXAMPLE.read_text()
    installed.write_text('sources = ["kmsg"]\n')  # the administrator's own
    install()
    assert installed.read_text() == 'sources = ["kmsg"]\n'  # never overwritten


def committed(db: Path) -> int:
    """The high-water marks in db (0 before ingest made it)."""
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return connection.execute(
                "SELECT coalesce(sum(high_water), 0) FROM instances"
            ).fetchone()[0]
        finally:
            connection.close()
    except sqlite3.OperationalError:  # no file or no schema yet
        return 0


def write_config(path: Path, sock: Path, db: Path, records: int) -> None:
    path.write_text(f'sources = ["unix:{sock}"]\ndatabase = "{db}"\n[batch]\nrecords = {records}\n')


def test_sighup_reloads_and_reopens_without_losing_or_repeating(tmp_path: Path) -> None:
    sock, config = tmp_path / "sim.sock", tmp_path / "kextlog.toml"
    first, second = tmp_path / "a" / "k.db", tmp_path / "b" / "k.db"
    first.parent.mkdir()
    second.parent.mkdir()
    count = 60_000
    simulator = start_simulator(
        sock, "--rate", "10000", "--count", str(count),
        log=tmp_path / "sim.log",
    )  # fmt: skip
    write_config(config, sock, first, 1000)
    log = tmp_path / "ingest.log"
    ingest = start("ingest", "--config", str(config), log=log)
    wait_for_line(log, "connected to", count=1)
    reloads = 0

    def hangup(db: Path | None = None) -> None:
        """A reload; then, with db, until more records are committed there."""
        nonlocal reloads
        ingest.send_signal(signal.SIGHUP)
        reloads += 1
        wait_for_line(log, "ingest: reloaded", count=reloads)
        if db is not None:
            mark = committed(db)
            wait_until(lambda: committed(db) > mark, f"records committed to {db}")

    for _ in range(3):  # the same store, reopened while records flow
        hangup(first)
    write_config(config, sock, second, 200)
    hangup(second)  # another store, smaller batches
    hangup(second)
    config.write_text("[batch]\nrecords = 0\n")  # broken: the running configuration stays
    ingest.send_signal(signal.SIGHUP)
    wait_for_line(log, "reload failed", count=1)
    out, _ = simulator.communicate(timeout=120)  # exits once everything is acknowledged
    assert simulator.returncode == 0
    write_config(config, sock, second, 200)
    hangup()
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=120) == 0
    counters = json.loads(out)
    assert counters["last_seq"] == count and counters["lost"] == 0

    messages = log.read_text()
    assert f"reloaded {config}: database sqlite:///{second}, batches of 200 records" in messages
    assert messages.count("reload failed: ") == 1
    assert f"{config}, line 2: batch.records: expected an integer" in messages
    assert "Traceback" not in messages
    # Every seq in exactly one of the two stores, none lost; the second
    # store's instance starts where the first one's ends.
    (old,) = accounting(first).values()
    (new,) = accounting(second).values()
    assert old["losses"] == new["losses"] == []
    assert old["stored"] == list(range(1, old["high_water"] + 1))
    assert new["stored"] == list(range(old["high_water"] + 1, count + 1))
    assert 0 < old["high_water"] < count and new["high_water"] == count
    with sqlite3.connect(second) as connection:
        assert connection.execute("SELECT first_seq FROM instances").fetchone() == (
            old["high_water"] + 1,
        )
    # The first store's status says ingest left it; the second's that it stopped.
    for db in (first, second):
        status = json.loads(db.with_name("k.db-ingest.json").read_text())
        assert status["running"] is False


def test_sighup_with_sources_changed_says_they_need_a_restart(tmp_path: Path) -> None:
    config, db, log = tmp_path / "kextlog.toml", tmp_path / "k.db", tmp_path / "ingest.log"
    write_config(config, tmp_path / "a.sock", db, 1000)
    ingest = start("ingest", "--config", str(config), log=log)
    wait_for_line(log, "retrying", count=1)
    write_config(config, tmp_path / "b.sock", db, 1000)
    ingest.send_signal(signal.SIGHUP)
    wait_for_line(log, "ingest: reloaded", count=1)
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=120) == 0
    assert "reload: sources changed: restart ingest to apply" in log.read_text()
    status = json.loads(db.with_name("k.db-ingest.json").read_text())
    assert [source["source"] for source in status["sources"]] == [f"unix:{tmp_path}/a.sock"]


def test_sighup_to_a_store_others_could_change_keeps_the_running_one(tmp_path: Path) -> None:
    config, db, log = tmp_path / "kextlog.toml", tmp_path / "k.db", tmp_path / "ingest.log"
    write_config(config, tmp_path / "a.sock", db, 1000)
    ingest = start("ingest", "--config", str(config), log=log)
    wait_for_line(log, "retrying", count=1)
    everyone = tmp_path / "everyone"
    everyone.mkdir()
    everyone.chmod(0o777)
    write_config(config, tmp_path / "a.sock", everyone / "k.db", 1000)
    ingest.send_signal(signal.SIGHUP)
    wait_for_line(log, "reload failed", count=1)
    assert ingest.poll() is None  # still running, on the first store
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=120) == 0
    assert (
        f"reload failed: refusing the database {everyone / 'k.db'}: {everyone} is writable by "
        "everyone" in log.read_text()
    )
    assert list(everyone.iterdir()) == []
    assert json.loads(db.with_name("k.db-ingest.json").read_text())["running"] is False


def receive_all(server: socket.socket) -> list[str]:
    """The messages waiting (the sender has exited: all of them)."""
    messages = []
    server.setblocking(False)
    while True:
        try:
            messages.append(server.recv(65536).decode())
        except BlockingIOError:
            return messages


@pytest.mark.parametrize("journal", [False, True])
def test_messages_go_to_syslog_with_facility_and_priority(tmp_path: Path, journal: bool) -> None:
    address = tmp_path / "log"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(address))
    config, db, log = tmp_path / "kextlog.toml", tmp_path / "k.db", tmp_path / "ingest.log"
    missing = tmp_path / "missing.sock"
    config.write_text(f'sources = ["unix:{missing}"]\nsyslog = true\nsyslog_socket = "{address}"\n')
    log.touch()
    # Under systemd, JOURNAL_STREAM names stderr when it is the journal.
    env = {"JOURNAL_STREAM": f"{log.stat().st_dev}:{log.stat().st_ino}"} if journal else {}
    ingest = start("ingest", "--config", str(config), "--db", str(db), log=log, **env)
    try:
        server.settimeout(120)
        first = [server.recv(65536).decode() for _ in range(2)]  # where it stores, a retry
    finally:
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(timeout=120) == 0
    messages = [*first, *receive_all(server)]
    server.close()
    pid = ingest.pid
    # facility daemon (3): warning 3*8+4, info 3*8+6.
    assert messages[0].startswith(f"<30>kextlog[{pid}]: ingest: storing in {db}, ")
    assert messages[1] == (
        f"<28>kextlog[{pid}]: ingest: unix:{missing}: No such file or directory; retrying\x00"
    )
    assert re.fullmatch(
        rf"<30>kextlog\[{pid}\]: ingest: stopped: 0 records stored.*\x00", messages[-1]
    )
    on_stderr = log.read_text()
    if journal:  # each message once: in syslog, not again through stderr
        assert on_stderr == ""
    else:
        assert f"kextlog ingest: unix:{missing}: No such file or directory; retrying" in on_stderr
        assert "kextlog ingest: stopped: 0 records stored" in on_stderr


def test_without_a_syslog_one_warning_and_stderr(tmp_path: Path) -> None:
    nowhere, db, log = tmp_path / "no-syslog", tmp_path / "k.db", tmp_path / "ingest.log"
    config = tmp_path / "kextlog.toml"
    config.write_text(f'syslog_socket = "{nowhere}"\n')
    ingest = start(
        "ingest", "--config", str(config), "--syslog", "--source", f"unix:{tmp_path}/x.sock",
        "--db", str(db), log=log,
    )  # fmt: skip
    wait_for_line(log, "retrying", count=1)
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=120) == 0
    lines = log.read_text().splitlines()
    assert lines[0] == (
        f"kextlog ingest: no syslog at {nowhere} (No such file or directory): "
        "messages go to stderr only"
    )
    assert sum("no syslog" in line for line in lines) == 1
    assert lines[-1].startswith("kextlog ingest: stopped: 0 records stored")


# --- make run -------------------------------------------------------------------


def make_run(sock: Path, db: Path, **options: object) -> subprocess.Popen[str]:
    """`make run` on a socket and store of the test's (the host's kernel log left out)."""
    command = ["make", "-s", "-C", str(ROOT), "run", f"SIM_SOCKET={sock}", "KMSG_SOURCE="]
    env = {**os.environ, "KEXTLOG_DB": str(db)}
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, text=True, **options)


def test_make_run_says_where_it_stores_and_a_second_one_stops(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        unavailable("needs make(1)")
    sock, db = tmp_path / "sim.sock", tmp_path / "k.db"
    log = tmp_path / "make-run.log"
    first = make_run(sock, db, stdout=subprocess.DEVNULL, stderr=log.open("w"),
                     start_new_session=True)  # fmt: skip
    try:
        wait_for_line(log, f"kextlog ingest: storing in {db}, the oldest records removed above ", 1)
        # The simulator of a second make run finds its socket in use: make
        # run ends with that error, and no ingest reconnects for ever.
        second = make_run(sock, tmp_path / "other.db", stderr=subprocess.PIPE)
        _, errors = second.communicate(timeout=60)
        assert second.returncode != 0
        assert f"kextlog: error: simulate: {sock} is in use by another producer\n" in errors
        assert "kextlog ingest" not in errors
        assert not (tmp_path / "other.db").exists()
    finally:
        os.killpg(first.pid, signal.SIGINT)  # Ctrl-C at its terminal
        first.wait(timeout=60)
    assert "10% of its file system, at most 4 GiB" in log.read_text()

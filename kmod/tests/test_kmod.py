"""The Linux module in a real kernel: Debian's, booted in qemu (TCG), with
the real `kextlog ingest` on the host end of the relay.  One boot runs every
scenario (kmod/guest/init); each test decides one from the host's store and
the guest's console.

Sizes: KEXTLOG_KMOD="STORM RATE KILLS" (records per CPU in the storm,
records per second per CPU while ingest is killed, how many kills); by hand,
e.g. KEXTLOG_KMOD="40000 2000 6" make kmod-test.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from kmod_guest import (
    FORBIDDEN,
    KMOD,
    TIMINGS,
    Guest,
    Ingest,
    Step,
    kernel_version,
    matches,
    missing,
)

from tests.conftest import unavailable
from tests.test_delivery import accounting, assert_each_seq_once, integrity

STORM, KILL_RATE, KILLS = (
    int(value) for value in os.environ.get("KEXTLOG_KMOD", "8000 800 3").split()
)
RING = 65536  # records: holds what the kill storm logs while ingest is down
UNACKED = 50  # records per CPU logged after the host went, before rmmod
AWAY = 200  # records per CPU logged into a ring of 64 with the host away
SERVED = 10  # records per CPU logged after the hostile reader (the ring holds 64)


@dataclass
class Run:
    """What one boot of the guest left: its steps, the console, the store."""

    steps: dict[str, Step]
    snapshots: dict[str, dict]  # the store's accounting (test_delivery) at a step
    console: list[str]
    db: Path
    exit_status: int
    timings: list[str]

    def console_between(self, first: str, last: str) -> list[str]:
        """The console lines between two steps."""
        return self.console[self.steps[first].line : self.steps[last].line]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Run:
    kver = kernel_version()
    lacking = missing(kver)
    if lacking:
        unavailable(
            f"kmod-test needs {', '.join(lacking)} (tests/install-packages.sh kmod installs them)"
        )
    work = tmp_path_factory.mktemp("kmod")
    began = time.monotonic()
    # Not the calling make's jobserver or flags: kbuild runs its own.
    alone = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    built = subprocess.run(
        ["make", "-C", str(KMOD), "initramfs"], capture_output=True, text=True, env=alone
    )
    assert built.returncode == 0, built.stdout + built.stderr
    build_seconds = time.monotonic() - began

    db, socket = work / "kextlog.db", work / "relay.sock"
    guest = Guest.boot(
        kver, KMOD / "build" / "initramfs.cpio", socket, work / "console.log",
        ring=RING, storm=STORM, kill_rate=KILL_RATE, kills=KILLS, unacked_records=UNACKED,
        away_records=AWAY, served_records=SERVED,
    )  # fmt: skip
    ingest = Ingest(socket, db, work / "ingest.log")
    steps: dict[str, Step] = {}
    snapshots: dict[str, dict] = {}

    def step(name: str, key: str | None = None) -> Step:
        steps[key or name] = guest.wait(name)
        return steps[key or name]

    try:
        step("booted")
        step("loaded", "loaded big ring")
        ingest.start()
        step("storm begins")
        step("storm ends")
        snapshots["storm ends"] = accounting(db)

        step("kills begin")
        chance = random.Random(20261207)
        for kill in range(KILLS):
            ingest.wait_connected(kill + 1)  # the first daemon, then each new one
            time.sleep(chance.uniform(0.2, 1.0))
            ingest.kill()
            ingest.start()
        step("kills end")
        snapshots["kills end"] = accounting(db)

        step("rmmod while open")
        step("host away", "host away before rmmod")
        ingest.stop()
        step("unacknowledged")
        snapshots["unacknowledged"] = accounting(db)
        step("rmmod when closed")

        step("loaded", "loaded small ring")
        step("overflowed")
        ingest.start()
        step("overflow stored")
        snapshots["overflow stored"] = accounting(db)
        ingest.stop()

        step("hostile")
        ingest.start()
        step("served")
        snapshots["served"] = accounting(db)
        step("host away", "host away at the end")
        ingest.stop()
        step("done")
        exit_status = guest.finish()
    finally:
        ingest.close()
        if guest.process.poll() is None:
            guest.process.kill()
            guest.process.wait()

    def between(first: str, last: str) -> str:
        return f"{steps[last].seconds - steps[first].seconds:.1f} s"

    timings = [
        f"build {build_seconds:.1f} s; boot to init {steps['booted'].seconds:.1f} s; "
        f"guest run {time.monotonic() - guest.started:.1f} s; "
        f"all {time.monotonic() - began:.1f} s",
        f"storm: {steps['storm ends']['logged']} records in "
        f"{between('storm begins', 'storm ends')}",
        f"kills: {KILLS} kills, {steps['kills end']['logged'] - steps['storm ends']['logged']} "
        f"records in {between('kills begin', 'kills end')}",
        f"rmmod: {steps['unacknowledged']['logged'] - steps['unacknowledged']['acknowledged']} "
        f"unacknowledged records flushed, {between('rmmod while open', 'rmmod when closed')}",
        f"overflow: {steps['overflow stored']['diverted']} of "
        f"{steps['overflow stored']['logged']} records lost, "
        f"{between('loaded small ring', 'overflow stored')}",
        f"hostile: {between('overflow stored', 'served')}",
    ]
    request.config.stash[TIMINGS] = timings
    return Run(steps, snapshots, guest.console(), db, exit_status, timings)


def instance(run: Run, loaded: str) -> str:
    return run.steps[loaded].fields["instance"]


def test_a_storm_from_every_cpu_and_the_timer_is_stored_exactly_once(run: Run) -> None:
    ends = run.steps["storm ends"]
    stored = run.snapshots["storm ends"][instance(run, "loaded big ring")]
    cpus = run.steps["booted"]["cpus"]
    assert cpus >= 2 and ends["logged"] > cpus * STORM  # the timer and the probe logged too
    assert stored["stored"] == list(range(1, ends["logged"] + 1))  # each seq once, none missing
    assert stored["losses"] == [] and ends["diverted"] == 0


def test_ingest_killed_during_a_storm_still_stores_each_record_once(run: Run) -> None:
    ends = run.steps["kills end"]
    stored = run.snapshots["kills end"][instance(run, "loaded big ring")]
    assert ends["logged"] > run.steps["storm ends"]["logged"]
    assert ends["connects"] == KILLS + 1  # every kill cut a live connection
    assert stored["stored"] == list(range(1, ends["logged"] + 1))
    assert stored["losses"] == [] and ends["diverted"] == 0
    assert integrity(run.db) == "ok"


def test_rmmod_is_refused_while_open_and_flushes_unacknowledged_records(run: Run) -> None:
    refused = run.steps["rmmod while open"]
    assert refused["status"] != 0 and refused.fields["still_loaded"] == "yes"
    assert run.steps["rmmod when closed"]["status"] == 0
    counts = run.steps["unacknowledged"]
    first, last = counts["acknowledged"] + 1, counts["logged"]
    assert last - first + 1 >= run.steps["booted"]["cpus"] * UNACKED
    # The store has everything up to the last ACK, the kernel log the rest.
    stored = run.snapshots["unacknowledged"][instance(run, "loaded big ring")]
    assert stored["stored"] == list(range(1, first))
    console = run.console_between("unacknowledged", "rmmod when closed")
    flushed = [int(m[1]) for m in matches(console, r"kextlog: unacknowledged seq (\d+) ")]
    assert flushed == list(range(first, last + 1))
    summary = matches(
        console, r"kextlog: stop: (\d+) unacknowledged records, seqs (\d+)\.\.(\d+), printed below"
    )
    assert [tuple(map(int, m.groups())) for m in summary] == [(last - first + 1, first, last)]


def test_an_overflow_while_ingest_is_away_is_exact_losses_and_printk(run: Run) -> None:
    counts = run.steps["overflow stored"]
    stored = run.snapshots["overflow stored"][instance(run, "loaded small ring")]
    assert counts["diverted"] > counts["logged"] // 2  # most of them: the ring holds 64
    assert_each_seq_once(stored, counts["logged"])
    assert {reason for *_, reason in stored["losses"]} == {"ring-full"}
    assert sum(count for _, _, count, *_ in stored["losses"]) == counts["diverted"]
    # Each lost record went to printk, with its seq.
    lost = {seq for first, last, *_ in stored["losses"] for seq in range(first, last + 1)}
    console = run.console_between("loaded small ring", "overflow stored")
    printed = [int(m[1]) for m in matches(console, r"kextlog: lost seq (\d+) ")]
    assert sorted(printed) == sorted(lost)


def test_a_hostile_reader_is_refused_and_the_module_keeps_serving(run: Run) -> None:
    hostile = run.steps["hostile"]
    assert hostile["status"] == 0
    checks = matches(run.console, r"^hostile: (ok|FAIL): (.*)$")
    assert len(checks) >= 15 and all(m[1] == "ok" for m in checks)
    (refused,) = matches(run.console, r"^hostile: refused_writes=(\d+)")
    # Each refused write was counted once, and nothing else was.
    before = run.steps["overflow stored"]["bad_input"]
    assert hostile["bad_input"] - before == int(refused[1]) > 0
    # Afterwards: a new reader, every seq accounted for once, the new records stored.
    served = run.steps["served"]
    stored = run.snapshots["served"][instance(run, "loaded small ring")]
    assert_each_seq_once(stored, served["logged"])
    assert set(range(hostile["logged"] + 1, served["logged"] + 1)) <= set(stored["stored"])


def test_records_carry_real_tasks_from_every_context(run: Run) -> None:
    with sqlite3.connect(run.db) as connection:
        tasks = connection.execute(
            "SELECT process, min(pid), max(pid) FROM records r"
            " JOIN instances i ON i.id = r.instance_id WHERE i.uuid = ? GROUP BY process",
            (instance(run, "loaded big ring"),),
        ).fetchall()
    by_name = {process: (low, high) for process, low, high in tasks}
    cpus = run.steps["booted"]["cpus"]
    for cpu in range(cpus):  # process context on every CPU: the demo's kthreads
        assert by_name[f"kextlog_demo/{cpu}"][0] > 0
    timer = [pids for name, pids in by_name.items() if name.startswith("softirq/")]
    assert timer and all(pids == (0, 0) for pids in timer)  # the timer: no task of its own
    assert by_name["cat"][0] > 1  # the probe on open: the guest's processes


def test_the_console_is_free_of_kernel_warnings(run: Run) -> None:
    assert run.exit_status == 0
    assert "reboot: Power down" in run.console[-1]
    found = [line for line in run.console if FORBIDDEN.search(line)]
    assert found == []

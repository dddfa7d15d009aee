"""`kextlog simulate` stops as the kext does: SIGTERM sends every record no
client acknowledged to the last-resort print (its stderr, the stand-in for
the kernel's printf), after one summary line, and counts them."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from kextlog_store.wire import (
    Frame,
    FrameReader,
    Hello,
    LogRun,
    Status,
    encode_ack,
    encode_resume,
)
from tests.processes import connect, start_simulator

UNACKNOWLEDGED = re.compile(r"^kextlog: unacknowledged seq (\d+) (\w+): (.*)$")
LOST = re.compile(r"^kextlog: lost seq (\d+) \w+: ")


def wait_for_text(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} never appeared in {log}")
        time.sleep(0.02)


def terminate(simulator) -> dict:
    """SIGTERM, then the counters it prints as it exits."""
    simulator.send_signal(signal.SIGTERM)
    out, _ = simulator.communicate(timeout=60)
    assert simulator.returncode == 0
    return json.loads(out)


def recorded(path: Path) -> dict[int, dict]:
    """The --record file: every generated record by seq."""
    return {row["seq"]: row for row in map(json.loads, path.read_text().splitlines())}


def printed_at_stop(log: Path) -> list[tuple[int, str, str]]:
    """(seq, level, text) of each unacknowledged record printed, in order."""
    return [
        (int(match[1]), match[2], match[3])
        for match in map(UNACKNOWLEDGED.match, log.read_text().splitlines())
        if match
    ]


def read_until(
    client: socket.socket, reader: FrameReader, wanted: Callable[[Frame], bool]
) -> Frame:
    """Reads datagrams until a frame is wanted; returns it (the rest of its
    datagram is dropped)."""
    while True:
        for frame in reader.feed_datagrams([client.recv(1 << 18)]):
            if wanted(frame):
                return frame


def test_sigterm_prints_exactly_the_unacknowledged(tmp_path: Path) -> None:
    sock, log, record = tmp_path / "sim.sock", tmp_path / "sim.log", tmp_path / "sent.jsonl"
    simulator = start_simulator(
        sock, "--rate", "0", "--count", "40", "--ring", "100",
        "--record", str(record), log=log,
    )  # fmt: skip
    wait_for_text(log, "generated 40 records")

    # A daemon: RESUME from 1, reads all 40, commits 15 of them and goes.
    client, reader = connect(sock), FrameReader()
    hello = read_until(client, reader, lambda frame: isinstance(frame, Hello))
    assert isinstance(hello, Hello)
    client.sendall(encode_resume(hello.instance_raw, 1))
    read_until(client, reader, lambda frame: isinstance(frame, LogRun) and frame.last_seq == 40)
    client.sendall(encode_ack(15))
    # The producer's next STATUS shows the ACK taken: 25 records held.
    read_until(client, reader, lambda frame: isinstance(frame, Status) and frame.ring_records == 25)
    client.close()

    counters = terminate(simulator)
    assert counters["acked"] == 15 and counters["printed_at_stop"] == 25
    lines = log.read_text().splitlines()
    summary = "kextlog: stop: 25 unacknowledged records, seqs 16..40, printed below"
    assert lines.count(summary) == 1
    assert UNACKNOWLEDGED.match(lines[lines.index(summary) + 1])  # what it announces follows
    printed = printed_at_stop(log)
    assert [seq for seq, _, _ in printed] == list(range(16, 41))
    sent = recorded(record)
    for seq, level, text in printed:
        assert (level, text) == (sent[seq]["level"].upper(), sent[seq]["message"])


def test_sigterm_after_an_overflow_accounts_for_every_seq(tmp_path: Path) -> None:
    sock, log = tmp_path / "sim.sock", tmp_path / "sim.log"
    simulator = start_simulator(
        sock, "--rate", "0", "--count", "30", "--ring", "10",
        log=log,
    )  # fmt: skip
    wait_for_text(log, "generated 30 records")
    counters = terminate(simulator)  # no daemon ever came

    assert counters["lost"] == 20 and counters["printed_at_stop"] == 10
    text = log.read_text()
    assert "kextlog: stop: 10 unacknowledged records, seqs 1..10, printed below" in text
    lost = [int(match[1]) for match in map(LOST.match, text.splitlines()) if match]
    unacknowledged = [seq for seq, _, _ in printed_at_stop(log)]
    # Each seq went to the last resort once: lost when logged, or at stop.
    assert sorted(lost + unacknowledged) == list(range(1, 31))
    assert unacknowledged == list(range(1, 11))


def test_quiet_losses_prints_nothing_but_counts(tmp_path: Path) -> None:
    sock, log = tmp_path / "sim.sock", tmp_path / "sim.log"
    simulator = start_simulator(
        sock, "--rate", "0", "--count", "5", "--quiet-losses",
        log=log,
    )  # fmt: skip
    wait_for_text(log, "generated 5 records")
    counters = terminate(simulator)

    assert counters["printed_at_stop"] == 5
    assert "unacknowledged" not in log.read_text()

"""What the `kextlog` commands do to the terminal and the process around
them: colour or not, the pager, a hard time limit, signals that ask for a
clean stop."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress


def color() -> bool:
    """Colour on a terminal, unless NO_COLOR is set (no-color.org) or TERM is dumb."""
    return (
        sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    )


@contextmanager
def pager(*, enabled: bool) -> Iterator[None]:
    """Page stdout on a terminal, as journalctl does: $KEXTLOG_PAGER, else
    $PAGER, else less with LESS=FRSXMK (quit when it fits one screen, keep
    colours, chop long lines, no screen clearing, Ctrl-C quits) unless LESS
    is set.  '' or cat means no pager, and so does a terminal that cannot
    run one (TERM dumb or unset, as systemd's pager decides).  When the
    reader quits the pager early, the rest of the output is dropped quietly."""
    command = os.environ.get("KEXTLOG_PAGER", os.environ.get("PAGER", "less"))
    words = shlex.split(command)
    dumb = os.environ.get("TERM") in (None, "dumb")
    if not enabled or not sys.stdout.isatty() or dumb or words in ([], ["cat"]):
        yield
        return
    environment = {"LESS": "FRSXMK", "LESSCHARSET": "utf-8", **os.environ}
    sys.stdout.flush()
    try:
        process = subprocess.Popen(words, stdin=subprocess.PIPE, env=environment)
    except OSError:  # no such pager: write to the terminal itself
        yield
        return
    assert process.stdin is not None
    terminal = os.dup(sys.stdout.fileno())
    os.dup2(process.stdin.fileno(), sys.stdout.fileno())
    process.stdin.close()
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:  # the reader quit the pager: drop what is left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        with suppress(BrokenPipeError):
            sys.stdout.flush()
    finally:
        os.dup2(terminal, sys.stdout.fileno())
        os.close(terminal)
        # The pager owns the terminal until it ends: Ctrl-C is for it (less -K).
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.wait()
        finally:
            signal.signal(signal.SIGINT, previous)


# How long a statement may run past its time limit before the process ends:
# the time limit stops a statement between SQLite's instructions, never
# inside one call of a function (REGEXP with a huge pattern, instr() or
# replace() over megabytes), nor PostgreSQL's client waiting for a server
# that does not answer.
HARD_LIMIT_GRACE = 1.0


@contextmanager
def hard_time_limit(seconds: float, message: Callable[[], str]) -> Iterator[None]:
    """Ends the process with message (exit 1) if what runs inside takes
    HARD_LIMIT_GRACE longer than seconds; for what only reads, so that
    nothing is left half done."""

    def expire() -> None:
        sys.stderr.write(f"kextlog: error: {message()}\n")
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(seconds + HARD_LIMIT_GRACE, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def stop_on_signals(stop: threading.Event) -> threading.Event:
    """SIGINT and SIGTERM ask for a clean stop instead of killing."""

    def request_stop(_signal: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop

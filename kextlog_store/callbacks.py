"""What a connection that reads calls back into Python, on SQLite: REGEXP
(RE2's, regex.py) and a progress handler that stops a statement at its
deadline or on Ctrl-C, and what a driver error they caused really was."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from . import regex
from .errors import UsageError

# How often SQLite calls back while a statement runs, in virtual machine
# instructions: a few thousand a millisecond, so a time limit or a Ctrl-C
# is seen within a millisecond or so.
PROGRESS_INSTRUCTIONS = 1_000


class Callbacks:
    """A read connection's Python callbacks, and what went wrong in them.

    SQLite turns an exception raised in a callback into an error of its own
    ("user-defined function raised exception", "interrupted") and drops
    it; this remembers it, so that the error can be told for what it was.
    A Ctrl-C (KeyboardInterrupt) arrives in whatever Python code runs, and
    while a statement runs that is mostly a callback: the progress handler
    then stops the statement, and the error becomes a KeyboardInterrupt
    again.  deadline: time.monotonic() past which the statement stops."""

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self.interrupted = False
        self.refused: UsageError | None = None  # a REGEXP pattern RE2 does not take

    def regexp(self, pattern: str | None, value: Any) -> bool | None:
        """SQLite's `X REGEXP Y` calls regexp(Y, X): a search (regex.compile)."""
        try:
            if pattern is None or value is None:
                return None
            text = value if isinstance(value, bytes) else str(value).encode()
            return regex.compile(pattern).search(text)
        except UsageError as exc:
            self.refused = exc
            raise
        except KeyboardInterrupt:
            self.interrupted = True
            raise

    def progress(self) -> int:
        """Non-zero stops the statement: at the deadline, or after a Ctrl-C."""
        try:
            return int(self.interrupted or self.timed_out())
        except KeyboardInterrupt:
            self.interrupted = True
            return 1

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def failure(self, exc: BaseException) -> BaseException | None:
        """What a driver error really was when a callback caused it: the
        KeyboardInterrupt of a Ctrl-C, or the UsageError of a REGEXP
        pattern; None when it was something else."""
        message = str(exc)
        from_callback = message in ("interrupted", "user-defined function raised exception")
        if self.interrupted or (from_callback and self.refused is None and not self.timed_out()):
            # A KeyboardInterrupt raised as a callback starts is dropped
            # before this one could see it: nothing else stops a statement so.
            return KeyboardInterrupt()
        if self.refused is not None and from_callback:
            return UsageError(f"SQL: REGEXP: {self.refused}")
        return None

    def attach(self, connection: sqlite3.Connection) -> None:
        """REGEXP (RE2's) and the progress handler, on a connection that reads."""
        connection.create_function("regexp", 2, self.regexp, deterministic=True)
        connection.set_progress_handler(self.progress, PROGRESS_INSTRUCTIONS)
